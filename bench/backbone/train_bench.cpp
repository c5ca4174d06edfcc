// One SVF training step (forward over prompt + response, loss = -sum of response
// log-probs, backward to z) on the real model: t2's TrainForward against PyTorch
// eager on the CPU (train_bench_torch.py, run from here on the same ids, z and
// thread count). Prints both step times, the ratio, and both losses and |dz| so the
// run checks that the two did the same work.
//
//   train_bench MODEL [batch 8] [prompt 120] [response 80] [repeats 3] [--no-peer]
//   (T2_REF_PYTHON: the Python with torch and transformers, default /opt/t2ref/bin/python)
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "backbone/model.h"
#include "backbone/svf.h"
#include "backbone/train_forward.h"

using namespace t2::backbone;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// CPU seconds of every thread of the process: the work done, whatever else the
// machine runs (with OMP_WAIT_POLICY=passive, idle threads do not count).
double cpu_now() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string one;
  f >> one;
  return one;
}

struct StepResult {
  double seconds = 0.0, cpu_seconds = 0.0, loss = 0.0, dz_norm = 0.0;
};

// One step: run, dlogits of -sum log p(target) in place of the logits, backward.
StepResult step(TrainForward& tf, const std::vector<TrainSequence>& batch, int64_t vocab,
                const std::vector<int32_t>& targets, int64_t total_rank) {
  const double t0 = now(), c0 = cpu_now();
  tf.run(batch);
  std::vector<float>& d = tf.logits();
  double loss = 0.0;
#pragma omp parallel
  {
    std::vector<float> row(static_cast<size_t>(vocab));
#pragma omp for schedule(static) reduction(- : loss)
    for (int64_t r = 0; r < tf.rows(); ++r) {
      float* lr = &d[size_t(r * vocab)];
      std::copy(lr, lr + vocab, row.begin());
      std::fill(lr, lr + vocab, 0.0f);
      add_logprob_grad(row.data(), vocab, targets[size_t(r)], -1.0, lr);
      loss -= double(tf.token_logprobs()[size_t(r)]);
    }
  }
  const std::vector<float>& dz = tf.backward(d);
  StepResult res{now() - t0, cpu_now() - c0, loss, 0.0};
  for (int64_t i = 0; i < total_rank; ++i) {
    double g = 0.0;  // gradient of one z shared by the batch
    for (size_t s = 0; s < batch.size(); ++s) g += double(dz[s * size_t(total_rank) + size_t(i)]);
    res.dz_norm += g * g;
  }
  res.dz_norm = std::sqrt(res.dz_norm);
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: train_bench MODEL [batch] [prompt] [response] [repeats] "
                         "[--no-peer]\n");
    return 2;
  }
  bool peer = true;
  std::vector<int> nums;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--no-peer") peer = false;
    else nums.push_back(std::atoi(argv[i]));
  }
  const int n_batch = nums.size() > 0 ? nums[0] : 8, n_prompt = nums.size() > 1 ? nums[1] : 120;
  const int n_resp = nums.size() > 2 ? nums[2] : 80, repeats = nums.size() > 3 ? nums[3] : 3;

  const auto model = Model::load(argv[1]);
  const int64_t V = model->config().n_vocab;
  const auto svf = Svf::open(*model, MatrixSet::kMlp, default_cache_dir());
  const SvfSlots slots = SvfSlots::from(*svf, model->config().n_layer);

  // Token ids and one expert z = sigmoid(0.1 + 0.01 N(0, 1)) for every sequence.
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int32_t> tok(3, int32_t(V - 1));
  std::normal_distribution<float> normal;
  std::vector<std::vector<int32_t>> ids(static_cast<size_t>(n_batch));
  std::vector<int32_t> targets;
  for (auto& seq : ids) {
    for (int i = 0; i < n_prompt + n_resp; ++i) seq.push_back(tok(rng));
    targets.insert(targets.end(), seq.begin() + n_prompt, seq.end());
  }
  std::vector<float> z(size_t(slots.total_rank));
  for (float& x : z) x = 1.0f / (1.0f + std::exp(-(0.1f + 0.01f * normal(rng))));
  std::vector<TrainSequence> batch;
  for (const auto& seq : ids) batch.push_back({seq, n_prompt, z});

  TrainForward tf(*model, slots);
  const std::string load_before = load_average();
  StepResult ours{1e30, 1e30, 0, 0};  // the best wall and the best CPU time
  for (int r = 0; r <= repeats; ++r) {  // the first is a warm-up
    const StepResult s = step(tf, batch, V, targets, slots.total_rank);
    if (r == 0) continue;
    ours = {std::min(ours.seconds, s.seconds), std::min(ours.cpu_seconds, s.cpu_seconds), s.loss,
            s.dz_norm};
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const int64_t rows = int64_t(n_batch) * (n_prompt + n_resp - 1);
  std::printf("batch %d x (%d prompt + %d response) tokens, %d MLP slots (%lld z values), "
              "%d threads\n", n_batch, n_prompt, n_resp, slots.n_slots(),
              (long long)slots.total_rank, omp_get_max_threads());
  std::printf("activations kept: %.0f MB; peak RSS %.0f MB; load average %s (before t2)\n",
              double(tf.activation_bytes_per_row() * rows) / 1e6, double(ru.ru_maxrss) / 1024.0,
              load_before.c_str());
  std::printf("%-22s %9s %9s %14s %12s\n", "engine", "step s", "cpu s", "loss", "|dz|");
  std::printf("%-22s %9.3f %9.3f %14.6f %12.6g\n", "t2", ours.seconds, ours.cpu_seconds,
              ours.loss, ours.dz_norm);
  nlohmann::json result = {{"engine", "t2"},          {"threads", omp_get_max_threads()},
                           {"batch", n_batch},        {"prompt", n_prompt},
                           {"response", n_resp},      {"step_seconds", ours.seconds},
                           {"step_cpu_seconds", ours.cpu_seconds},
                           {"loss", ours.loss},       {"dz_norm", ours.dz_norm},
                           {"peak_rss_mb", double(ru.ru_maxrss) / 1024.0}};
  if (!peer) {
    std::printf("%s\n", result.dump().c_str());
    return 0;
  }

  // The peer: same GGUF, ids, z and threads, in one Python process.
  const std::filesystem::path model_path = std::filesystem::absolute(argv[1]);
  const nlohmann::json spec = {{"model_dir", model_path.parent_path().string()},
                               {"model_file", model_path.filename().string()},
                               {"threads", omp_get_max_threads()}, {"ids", ids},
                               {"n_prompt", n_prompt}, {"z", z}, {"repeats", repeats}};
  const std::string spec_path =
      (std::filesystem::temp_directory_path() / ("t2_train_bench_" + std::to_string(getpid()) +
                                                 ".json")).string();
  std::ofstream(spec_path) << spec.dump();
  const char* py = std::getenv("T2_REF_PYTHON");
  const std::string cmd = std::string(py ? py : "/opt/t2ref/bin/python") + " " + T2_SOURCE_DIR +
                          "/bench/backbone/train_bench_torch.py " + spec_path + " 2>/dev/null";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    while (fgets(buf, sizeof buf, p)) out = buf;  // the last line is the JSON
    pclose(p);
  }
  std::filesystem::remove(spec_path);
  nlohmann::json torch;
  try {
    torch = nlohmann::json::parse(out);
  } catch (const std::exception&) {
    std::fprintf(stderr, "the PyTorch peer printed no result (%s); run it by hand: %s\n",
                 out.c_str(), cmd.c_str());
    return 1;
  }
  double best = 1e30, best_cpu = 1e30;
  for (const char* mode : {"factored", "materialized"}) {
    const auto& m = torch[mode];
    std::printf("%-22s %9.3f %9.3f %14.6f %12.6g\n", (std::string("pytorch ") + mode).c_str(),
                m["seconds"].get<double>(), m["cpu_seconds"].get<double>(),
                m["loss"].get<double>(), m["dz_norm"].get<double>());
    best = std::min(best, m["seconds"].get<double>());
    best_cpu = std::min(best_cpu, m["cpu_seconds"].get<double>());
  }
  std::printf("ratio pytorch (faster way) / t2: %.2fx wall, %.2fx cpu; load average %s "
              "(after)\n", best / ours.seconds, best_cpu / ours.cpu_seconds,
              load_average().c_str());
  result["pytorch"] = torch;
  result["ratio"] = best / ours.seconds;
  result["ratio_cpu"] = best_cpu / ours.cpu_seconds;
  std::printf("%s\n", result.dump().c_str());
  return 0;
}
