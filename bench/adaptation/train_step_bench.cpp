// One REINFORCE training step of an SVF expert on the real model: rollouts (greedy,
// the reference settings) plus teacher-forced forward and backward to p, t2's
// Trainer against PyTorch eager on the CPU (train_step_bench_torch.py, same prompt
// ids, same responses for the backward, same p, same thread count). Prints both
// sides' rollout, gradient and total seconds, the ratio, and the loss and |dL/dp|
// of each so the run checks the two did the same work.
//
//   train_step_bench MODEL [--task sst2] [--batch 16] [--repeats 2] [--kl 0] [--no-peer]
//   (T2_REF_PYTHON: the Python with torch and transformers, default /opt/t2ref/bin/python)
#include <sys/resource.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "adaptation/task.h"
#include "adaptation/trainer.h"
#include "backbone/expert.h"
#include "backbone/model.h"
#include "backbone/svf.h"

using namespace t2;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Args {
  std::string model, task = "sst2";
  int batch = 16, repeats = 2;
  double kl = 0.0;
  bool peer = true;
};

Args parse(int argc, char** argv) {
  Args a;
  a.model = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (k == "--task") a.task = next();
    else if (k == "--batch") a.batch = std::stoi(next());
    else if (k == "--repeats") a.repeats = std::stoi(next());
    else if (k == "--kl") a.kl = std::stod(next());
    else if (k == "--no-peer") a.peer = false;
    else throw std::runtime_error("unknown argument " + k);
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: train_step_bench MODEL [--task T] [--batch B] [--repeats N] "
                         "[--kl L] [--no-peer]\n");
    return 2;
  }
  const Args a = parse(argc, argv);
  const auto model = backbone::Model::load(a.model);
  const auto svf = backbone::Svf::open(*model, backbone::MatrixSet::kMlp,
                                       backbone::default_cache_dir());
  const auto task = adaptation::Task::load(a.task, {T2_SOURCE_DIR "/configs/tasks", T2_DATA_DIR});
  auto examples = task.examples(adaptation::Split::kTrain);
  examples.resize(std::min(examples.size(), size_t(a.batch)));

  // Reference settings: one greedy answer per prompt, A = r, so every sample trains.
  adaptation::PolicyConfig config;
  config.kl_coef = a.kl;
  config.max_rows = 1 << 20;  // one chunk, as the peer runs one batch
  adaptation::Trainer trainer(*model, svf, task, config);
  const std::vector<float> p = backbone::expert_init(*svf, "bench", task.name(), 1).p;

  double best_roll = 1e30, best_grad = 1e30, best_total = 1e30;
  std::vector<adaptation::Rollout> rollouts;
  adaptation::PolicyGradient g;
  for (int r = 0; r <= a.repeats; ++r) {  // the first is a warm-up
    const double t0 = now();
    rollouts = trainer.rollout(examples, p, 0);
    const double t1 = now();
    g = trainer.gradient(rollouts, p);
    const double t2 = now();
    if (r == 0) continue;
    best_roll = std::min(best_roll, t1 - t0);
    best_grad = std::min(best_grad, t2 - t1);
    best_total = std::min(best_total, t2 - t0);
  }
  double norm = 0.0;
  for (float v : g.grad) norm += double(v) * v;
  norm = std::sqrt(norm);
  int64_t prompt_tokens = 0, response_tokens = 0, max_resp = 0;
  for (const auto& r : rollouts) {
    prompt_tokens += int64_t(r.prompt.size());
    response_tokens += int64_t(r.response.size());
    max_resp = std::max<int64_t>(max_resp, int64_t(r.response.size()));
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("%s: %zu prompts (%lld prompt tokens, %lld response tokens, longest %lld), "
              "greedy, lambda %g, %d threads, peak RSS %.0f MB\n",
              task.name().c_str(), examples.size(), (long long)prompt_tokens,
              (long long)response_tokens, (long long)max_resp, a.kl, omp_get_max_threads(),
              double(ru.ru_maxrss) / 1024.0);
  std::printf("%-24s %10s %10s %10s %14s %12s\n", "engine", "rollout s", "grad s", "step s",
              "loss", "|dL/dp|");
  std::printf("%-24s %10.3f %10.3f %10.3f %14.6f %12.6g\n", "t2", best_roll, best_grad,
              best_total, g.loss_sum, norm);
  nlohmann::json result = {{"engine", "t2"},          {"task", task.name()},
                           {"batch", examples.size()}, {"threads", omp_get_max_threads()},
                           {"rollout_seconds", best_roll}, {"gradient_seconds", best_grad},
                           {"step_seconds", best_total},   {"loss", g.loss_sum},
                           {"grad_norm", norm}};
  if (!a.peer) {
    std::printf("%s\n", result.dump().c_str());
    return 0;
  }

  // The peer: same GGUF, prompt ids, responses, advantages, p and threads.
  nlohmann::json prompts = nlohmann::json::array(), responses = nlohmann::json::array(),
                 adv = nlohmann::json::array();
  for (const auto& r : rollouts) {
    prompts.push_back(r.prompt);
    responses.push_back(r.response);
    adv.push_back(r.advantage);
  }
  const std::filesystem::path model_path = std::filesystem::absolute(a.model);
  const nlohmann::json spec = {{"model_dir", model_path.parent_path().string()},
                               {"model_file", model_path.filename().string()},
                               {"threads", omp_get_max_threads()}, {"prompts", prompts},
                               {"responses", responses}, {"advantages", adv},
                               {"max_new_tokens", max_resp}, {"p", p}, {"kl", a.kl},
                               {"repeats", a.repeats}};
  const std::string spec_path =
      (std::filesystem::temp_directory_path() /
       ("t2_train_step_bench_" + std::to_string(getpid()) + ".json")).string();
  std::ofstream(spec_path) << spec.dump();
  const char* py = std::getenv("T2_REF_PYTHON");
  const std::string cmd = std::string(py ? py : "/opt/t2ref/bin/python") + " " + T2_SOURCE_DIR +
                          "/bench/adaptation/train_step_bench_torch.py " + spec_path;
  std::string out, all;
  if (FILE* f = popen((cmd + " 2>&1").c_str(), "r")) {
    char buf[1 << 16];
    while (fgets(buf, sizeof buf, f)) {
      out = buf;  // the last line is the JSON
      all += buf;
    }
    pclose(f);
  }
  nlohmann::json torch;
  try {
    torch = nlohmann::json::parse(out);
  } catch (const std::exception&) {
    // The spec stays for a run by hand; the peer's own words say what went wrong.
    const size_t tail = all.size() > 4000 ? all.size() - 4000 : 0;
    std::fprintf(stderr, "the PyTorch peer printed no result; its output ends:\n%s\n"
                 "run it by hand: %s\n", all.substr(tail).c_str(), cmd.c_str());
    return 1;
  }
  std::filesystem::remove(spec_path);
  double best = 1e30;
  for (const char* mode : {"factored", "materialized"}) {
    const auto& m = torch[mode];
    std::printf("%-24s %10.3f %10.3f %10.3f %14.6f %12.6g\n",
                (std::string("pytorch ") + mode).c_str(), m["rollout_seconds"].get<double>(),
                m["gradient_seconds"].get<double>(), m["step_seconds"].get<double>(),
                m["loss"].get<double>(), m["grad_norm"].get<double>());
    best = std::min(best, m["step_seconds"].get<double>());
  }
  std::printf("ratio: pytorch (faster way) / t2 = %.2fx\n", best / best_total);
  result["pytorch"] = torch;
  result["ratio"] = best / best_total;
  std::printf("%s\n", result.dump().c_str());
  return 0;
}
