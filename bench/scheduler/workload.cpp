// Generation of skewed, bursty job mixes.
#include "bench/scheduler/workload.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace t2::scheduler::sim {
namespace {

struct Strategy {
  const char* name;
  Path path;
  bool two_pass;
  double output_factor;  // adapted models answer a little more tersely
};

constexpr Strategy kStrategies[] = {{"base", Path::kDense, false, 1.2},
                                    {"expert", Path::kMaterialized, false, 1.0},
                                    {"mixture", Path::kFactored, false, 0.9},
                                    {"auto", Path::kFactored, true, 0.9}};

struct TaskTruth {
  std::string name;
  double output_median;
  double prompt_median;
  double depth;
};

double log_uniform(std::mt19937_64& rng, double lo, double hi) {
  std::uniform_real_distribution<double> u(std::log(lo), std::log(hi));
  return std::exp(u(rng));
}

}  // namespace

Batch batch_of(const SimJob& job, const std::uint32_t* prompts, std::size_t count) {
  Batch b;
  b.path = job.job.path;
  b.two_pass = job.job.two_pass;
  b.depth = job.depth;
  b.requests = static_cast<std::uint32_t>(count);
  for (std::size_t k = 0; k < count; ++k) {
    b.prompt_tokens += job.job.prompt_tokens[prompts[k]];
    b.output_tokens += job.outputs[prompts[k]];
    b.longest_output = std::max(b.longest_output, job.outputs[prompts[k]]);
  }
  return b;
}

Workload make_mix(const MixOptions& options, const Cluster& cluster, const Hardware& hw) {
  std::mt19937_64 rng(options.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);

  std::vector<TaskTruth> tasks;
  for (std::size_t t = 0; t < options.tasks; ++t) {
    const double depth = unit(rng) < 0.3 ? 0.5 + 0.4 * unit(rng) : 1.0;  // early exit
    tasks.push_back({"task" + std::to_string(t), log_uniform(rng, 16, 400),
                     log_uniform(rng, 30, 600), depth});
  }

  Workload w;
  for (std::size_t i = 0; i < options.jobs; ++i) {
    const TaskTruth& task = tasks[rng() % tasks.size()];
    const Strategy& strategy = kStrategies[rng() % std::size(kStrategies)];
    const double size_class = unit(rng);
    const double prompts = size_class < 0.6   ? log_uniform(rng, 1, 32)
                           : size_class < 0.9 ? log_uniform(rng, 32, 512)
                                              : log_uniform(rng, 512, 6000);
    SimJob job;
    job.job.task = task.name;
    job.job.strategy = strategy.name;
    job.job.path = strategy.path;
    job.job.two_pass = strategy.two_pass;
    job.job.max_new_tokens = options.max_new_tokens;
    job.depth = task.depth;
    std::lognormal_distribution<double> prompt_len(std::log(task.prompt_median), 0.6);
    std::lognormal_distribution<double> output_len(
        std::log(task.output_median * strategy.output_factor), 0.6);
    const auto n = static_cast<std::size_t>(std::max(1.0, std::round(prompts)));
    for (std::size_t k = 0; k < n; ++k) {
      job.job.prompt_tokens.push_back(
          static_cast<std::uint32_t>(std::clamp(prompt_len(rng), 4.0, 4096.0)));
      job.outputs.push_back(static_cast<std::uint32_t>(
          std::clamp(output_len(rng), 1.0, double(options.max_new_tokens))));
    }
    w.jobs.push_back(std::move(job));
  }

  // Offered work as a simple placement would run it: batches of 16 in job order.
  std::vector<std::uint32_t> idx;
  for (const SimJob& job : w.jobs) {
    idx.resize(job.outputs.size());
    for (std::uint32_t k = 0; k < idx.size(); ++k) idx[k] = k;
    for (std::size_t k = 0; k < idx.size(); k += 16) {
      const std::size_t count = std::min<std::size_t>(16, idx.size() - k);
      w.work += clean_seconds(hw, batch_of(job, idx.data() + k, count));
    }
  }

  // Bursts spread over the window that gives the requested load.
  w.window = w.work / (options.load * cluster.true_capacity());
  const auto bursts = static_cast<std::size_t>(
      std::max(1.0, std::round(double(options.jobs) / options.burst_size)));
  std::vector<double> burst_at(bursts);
  for (double& t : burst_at) t = unit(rng) * w.window;
  std::sort(burst_at.begin(), burst_at.end());
  burst_at[0] = 0;
  for (SimJob& job : w.jobs) job.arrival = burst_at[rng() % bursts] + unit(rng);
  std::stable_sort(w.jobs.begin(), w.jobs.end(),
                   [](const SimJob& a, const SimJob& b) { return a.arrival < b.arrival; });
  for (std::size_t i = 0; i < w.jobs.size(); ++i) w.jobs[i].job.id = i + 1;
  return w;
}

}  // namespace t2::scheduler::sim
