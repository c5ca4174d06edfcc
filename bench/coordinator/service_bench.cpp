// service_bench: `t2 serve` measured end to end, each figure beside its peer
// from the same run.
//   training: one job of S steps with 1 worker rank, then with 2; rollout
//     tokens/s, seconds per step, the all-reduce's share of a step; ratio 2:1.
//   http: C clients for T seconds on GET /v1/jobs/ID (status) and
//     GET /v1/decisions?job=ID (audit); requests/s, p50, p99; ratio audit:status.
//
//   service_bench [--real] [--steps S] [--prompts P] [--seconds T] [--clients C]
//   --real: the default model (models/) on gsm8k instead of the tiny test model.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "tests/coordinator/service_harness.h"

using nlohmann::json;
using t2::test::Service;
using t2::test::ServiceOptions;

namespace {

struct Args {
  bool real = false;
  int steps = 6, prompts = 8, clients = 50;
  double seconds = 10;
};

ServiceOptions options(const Args& a, int ranks) {
  ServiceOptions o;
  o.ranks = ranks;
  if (a.real) {
    o.model_path = std::string(T2_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
    o.tasks_dir = std::string(T2_SOURCE_DIR) + "/configs/tasks";
    o.data_root = std::string(T2_SOURCE_DIR) + "/../shared/data";
  }
  return o;
}

struct TrainFigures {
  double tokens_per_s = 0, step_s = 0, allreduce_share = 0, allreduce_ms = 0;
};

TrainFigures train(const Args& a, int workers) {
  Service s(options(a, workers + 1));
  s.start();
  const std::string task = a.real ? "gsm8k" : "tiny_math";
  const json r = s.post("/v1/jobs", {{"type", "train"},
                                     {"spec", {{"task", task}, {"expert", "bench"},
                                               {"steps", a.steps}, {"prompts_per_step", a.prompts},
                                               {"samples_per_prompt", 2},
                                               {"max_tokens", a.real ? 48 : 16}}}});
  const int64_t id = r["job"]["id"];
  const json done = s.wait_job(id, 3600);
  if (done["state"] != "succeeded") throw std::runtime_error("training failed: " + done.dump());
  const json steps = s.get(fmt::format("/v1/jobs/{}/results", id))["steps"];
  TrainFigures f;
  double tokens = 0, seconds = 0, reduce = 0;
  // The first step warms caches and builds communicators: leave it out.
  for (size_t k = steps.size() > 1 ? 1 : 0; k < steps.size(); ++k) {
    tokens += steps[k]["rollout_tokens"].get<double>();
    seconds += steps[k]["seconds"].get<double>();
    reduce += steps[k]["allreduce_seconds"].get<double>();
  }
  const double n = double(steps.size() > 1 ? steps.size() - 1 : steps.size());
  f.tokens_per_s = tokens / std::max(1e-9, seconds);
  f.step_s = seconds / n;
  f.allreduce_share = reduce / std::max(1e-9, seconds);
  f.allreduce_ms = 1000 * reduce / n;
  s.drain();
  return f;
}

struct HttpFigures {
  int64_t requests = 0, errors = 0;
  double p50 = 0, p99 = 0, per_s = 0;
};

std::pair<HttpFigures, HttpFigures> http(const Args& a) {
  Service s(options(Args{}, 3));  // the tiny model: the figures are the API's, not the model's
  s.start();
  std::vector<int64_t> jobs;
  for (int k = 0; k < 4; ++k)
    jobs.push_back(s.post("/v1/jobs", {{"type", "generate"},
                                       {"spec", {{"prompts", {"a", "b", "c", "d", "e"}},
                                                 {"max_tokens", 3}}}})["job"]["id"]);
  for (int64_t id : jobs) s.wait_job(id);

  std::mutex mutex;
  std::vector<double> lat[2];
  std::atomic<int64_t> errors[2] = {0, 0};
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(a.seconds);
  std::vector<std::thread> threads;
  for (int c = 0; c < a.clients; ++c)
    threads.emplace_back([&, c] {
      auto client = s.client();
      std::vector<double> mine[2];
      for (int64_t i = 0; std::chrono::steady_clock::now() < until; ++i) {
        const int kind = int((i + c) % 2);
        const int64_t job = jobs[size_t(i) % jobs.size()];
        const std::string target = kind ? fmt::format("/v1/decisions?job={}&limit=20", job)
                                        : fmt::format("/v1/jobs/{}", job);
        const auto t0 = std::chrono::steady_clock::now();
        try {
          if (client->get(target).status != 200) ++errors[kind];
        } catch (const std::exception&) {
          ++errors[kind];
          continue;
        }
        mine[kind].push_back(std::chrono::duration<double, std::milli>(
                                 std::chrono::steady_clock::now() - t0).count());
      }
      std::lock_guard lock(mutex);
      for (int k = 0; k < 2; ++k) lat[k].insert(lat[k].end(), mine[k].begin(), mine[k].end());
    });
  for (auto& t : threads) t.join();
  s.drain();
  HttpFigures f[2];
  for (int k = 0; k < 2; ++k) {
    auto& v = lat[k];
    std::sort(v.begin(), v.end());
    f[k].requests = int64_t(v.size());
    f[k].errors = errors[k];
    f[k].per_s = double(v.size()) / a.seconds;
    if (!v.empty()) {
      f[k].p50 = v[v.size() / 2];
      f[k].p99 = v[std::min(v.size() - 1, size_t(0.99 * double(v.size())))];
    }
  }
  return {f[0], f[1]};
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string("0"); };
    if (arg == "--real") a.real = true;
    else if (arg == "--steps") a.steps = std::stoi(next());
    else if (arg == "--prompts") a.prompts = std::stoi(next());
    else if (arg == "--seconds") a.seconds = std::stod(next());
    else if (arg == "--clients") a.clients = std::stoi(next());
    else {
      fmt::print(stderr, "usage: service_bench [--real] [--steps S] [--prompts P] "
                         "[--seconds T] [--clients C]\n");
      return 2;
    }
  }
  std::fflush(stdout);
  fmt::print("training: {} steps of {} prompts x 2 samples, {} model\n", a.steps, a.prompts,
             a.real ? "SmolLM2-135M (gsm8k)" : "tiny test (tiny_math)");
  const TrainFigures one = train(a, 1), two = train(a, 2);
  fmt::print("{:<10} {:>14} {:>10} {:>14} {:>12}\n", "workers", "rollout tok/s", "step s",
             "all-reduce ms", "share");
  for (auto [n, f] : {std::pair{1, one}, std::pair{2, two}})
    fmt::print("{:<10} {:>14.1f} {:>10.3f} {:>14.2f} {:>11.2f}%\n", n, f.tokens_per_s, f.step_s,
               f.allreduce_ms, 100 * f.allreduce_share);
  fmt::print("ratio 2:1 workers: {:.2f}x rollout tokens/s\n\n",
             two.tokens_per_s / std::max(1e-9, one.tokens_per_s));

  const auto [status, audit] = http(a);
  fmt::print("http: {} clients for {:.0f} s on loopback\n", a.clients, a.seconds);
  fmt::print("{:<34} {:>9} {:>10} {:>9} {:>9} {:>7}\n", "endpoint", "requests", "req/s",
             "p50 ms", "p99 ms", "errors");
  fmt::print("{:<34} {:>9} {:>10.0f} {:>9.2f} {:>9.2f} {:>7}\n", "status  GET /v1/jobs/ID",
             status.requests, status.per_s, status.p50, status.p99, status.errors);
  fmt::print("{:<34} {:>9} {:>10.0f} {:>9.2f} {:>9.2f} {:>7}\n", "audit   GET /v1/decisions?job=ID",
             audit.requests, audit.per_s, audit.p50, audit.p99, audit.errors);
  fmt::print("ratio audit:status: {:.2f}x requests/s, {:.2f}x p99\n",
             audit.per_s / std::max(1e-9, status.per_s), audit.p99 / std::max(1e-9, status.p99));
  return status.errors + audit.errors > 0 ? 1 : 0;
}
