// Service harness (see service_harness.h).
#include "tests/coordinator/service_harness.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/backbone/tiny_gguf.h"

namespace t2::test {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// "What is 3 plus 4?" with the answer 7: the tiny model will rarely be right,
// but the answers are short and every step of the machinery runs.
std::string arithmetic_lines(int n, int salt) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    const int a = (i * 7 + salt) % 10, b = (i * 3 + 2 * salt) % 10;
    out += json{{"question", fmt::format("What is {} plus {}?", a, b)},
                {"answer", fmt::format("{} + {} = {}\n#### {}", a, b, a + b, a + b)}}
               .dump() + "\n";
  }
  return out;
}

std::string task_toml(const std::string& name, const std::string& category) {
  return fmt::format(R"(name = "{0}"
category = "{1}"
description = "Tiny sums for service tests ({1})."
format = "gsm8k"
answer = "numeric"
max_new_tokens = 6
on_bad_line = "reject"

[data]
train = "{0}/train.jsonl"
split = "even_odd"
test = "{0}/test.jsonl"

[prompt]
user = "{{question}}"

[reward]
correct = 1.0
wrong = -1.0
)", name, category);
}

}  // namespace

Service::Service(ServiceOptions options) : options_(std::move(options)) {
  char templ[] = "/tmp/t2-serve-XXXXXX";
  dir_ = mkdtemp(templ);
  TinyLlamaSpec spec;
  spec.n_ctx = 512;
  if (options_.model_path.empty()) write_tiny_llama(dir_ + "/tiny.gguf", spec);
  write(dir_ + "/tasks/tiny_math.toml", task_toml("tiny_math", "math"));
  write(dir_ + "/tasks/tiny_logic.toml", task_toml("tiny_logic", "reasoning"));
  write(dir_ + "/data/tiny_math/train.jsonl", arithmetic_lines(options_.train_examples, 1));
  write(dir_ + "/data/tiny_math/test.jsonl", arithmetic_lines(20, 2));
  write(dir_ + "/data/tiny_logic/train.jsonl", arithmetic_lines(options_.train_examples, 3));
  write(dir_ + "/data/tiny_logic/test.jsonl", arithmetic_lines(20, 4));
  config_ = dir_ + "/service.toml";
  const std::string model = options_.model_path.empty() ? dir_ + "/tiny.gguf"
                                                        : options_.model_path;
  const std::string tasks = options_.tasks_dir.empty() ? dir_ + "/tasks" : options_.tasks_dir;
  const std::string data = options_.data_root.empty() ? dir_ + "/data" : options_.data_root;
  // A real model keeps its SVD cache in the default place, shared across runs.
  const std::string cache = options_.model_path.empty() ? dir_ + "/cache" : "";
  write(config_, fmt::format(R"([model]
path = "{4}"
matrix_set = "mlp"
cache_dir = "{5}"

[store]
path = "{0}/var/t2.db"
fsync = false

[http]
listen = "127.0.0.1:0"
token = "{1}"
max_body_bytes = 65536
read_timeout_s = {2}
request_timeout_s = 60
threads = 4

[tasks]
dir = "{6}"
data_root = "{7}"

[worker]
threads = {8}
batch_size = 8
heartbeat_s = 0.5
lost_after_s = 10

[train]
checkpoint_every = 2

[scheduler]
max_shard_batch = 4
min_shard_seconds = 0.05
drain_timeout_s = 60
{3}
)", dir_, kToken, options_.read_timeout_s, options_.extra_config, model, cache, tasks,
                             data, options_.worker_threads));
}

Service::~Service() {
  if (running()) kill_all();
  std::error_code ignored;
  if (!std::getenv("T2_KEEP_TEST_DIRS")) fs::remove_all(dir_, ignored);
}

void Service::start() {
  if (running()) throw std::runtime_error("service already running");
  fs::remove(dir_ + "/var/t2.db.url");
  const std::string log = fmt::format("{}/serve-{}.log", dir_, starts_++);
  mpirun_ = fork();
  if (mpirun_ == 0) {
    setpgid(0, 0);  // one group: kill_all reaches every rank
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("OMP_WAIT_POLICY", "passive", 1);
    const std::string n = std::to_string(options_.ranks);
    execlp("mpirun", "mpirun", "-n", n.c_str(), "--oversubscribe", "--bind-to", "none",
           "--enable-recovery", T2_BINARY, "serve", "--config", config_.c_str(),
           static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(mpirun_, mpirun_);
  // The bound port appears in <store>.url once rank 0 listens.
  const std::string url_file = dir_ + "/var/t2.db.url";
  if (!wait_for([&] { return fs::exists(url_file) && fs::file_size(url_file) > 0; }, 120))
    throw std::runtime_error("service did not start:\n" + this->log());
  std::ifstream(url_file) >> url_;
  const bool healthy = wait_for([&] {
    try {
      auto c = client();
      const auto r = c->get("/v1/health");
      return r.status == 200 && r.json().value("status", "") == "ok";
    } catch (const std::exception&) {
      return false;
    }
  }, 120);
  if (!healthy) throw std::runtime_error("service not healthy:\n" + this->log());
}

bool Service::running() const {
  if (mpirun_ <= 0) return false;
  return waitpid(mpirun_, nullptr, WNOHANG) == 0;
}

int Service::drain(double timeout_s) {
  std::string pid_text;
  std::ifstream(dir_ + "/var/t2.db.pid") >> pid_text;
  const pid_t rank0 = pid_t(std::stol(pid_text));
  kill(rank0, SIGTERM);
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < until) {
    const pid_t r = waitpid(mpirun_, &status, WNOHANG);
    if (r == mpirun_) {
      mpirun_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill_all();
  return -1;
}

void Service::kill_all() {
  if (mpirun_ <= 0) return;
  kill(-mpirun_, SIGKILL);
  waitpid(mpirun_, nullptr, 0);
  mpirun_ = -1;
}

std::unique_ptr<coordinator::HttpClient> Service::client(const std::string& token) const {
  return std::make_unique<coordinator::HttpClient>(url_, token, 60);
}

json Service::get(const std::string& target) const {
  const auto r = client()->get(target);
  if (r.status != 200)
    throw std::runtime_error(fmt::format("GET {}: {} {}", target, r.status, r.body));
  return r.json();
}

json Service::post(const std::string& target, const json& body) const {
  const auto r = client()->post(target, body);
  if (r.status >= 300)
    throw std::runtime_error(fmt::format("POST {}: {} {}", target, r.status, r.body));
  return r.json();
}

json Service::wait_job(int64_t id, double timeout_s) const {
  json job;
  auto c = client();
  wait_for([&] {
    job = c->get(fmt::format("/v1/jobs/{}", id)).json();
    const std::string s = job.value("state", "");
    return s == "succeeded" || s == "failed" || s == "cancelled";
  }, timeout_s);
  return job;
}

bool Service::wait_for(const std::function<bool()>& done, double timeout_s) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

std::vector<int> Service::worker_pids() const {
  std::vector<int> out;
  const json ranks = get("/v1/health")["ranks"];
  for (const auto& r : ranks) out.push_back(r["pid"].get<int>());
  return out;
}

std::string Service::log() const {
  std::string out;
  for (int i = 0; i < starts_; ++i) {
    std::ifstream in(fmt::format("{}/serve-{}.log", dir_, i));
    std::stringstream s;
    s << in.rdbuf();
    out += fmt::format("---- start {} ----\n{}", i, s.str());
  }
  return out.size() > 20000 ? out.substr(out.size() - 20000) : out;
}

}  // namespace t2::test
