// `t2 bench scheduler`: replays skewed, bursty job mixes on 4 to 1,024 simulated
// ranks under round-robin, FIFO and t2's planner, prints makespan and mean and
// p99 job latency side by side with the ratios, times the planner on 100,000
// shards over 1,024 ranks, and ends with one summary line.
#pragma once

#include <cstdint>
#include <cstdio>

namespace t2::scheduler::sim {

struct BenchOptions {
  bool quick = false;  // fewer rank counts and jobs: a few seconds
  std::uint64_t seed = 1;
};

struct BenchSummary {
  double makespan_vs_round_robin = 0;  // worst over rank counts of the skewed mix
  double mean_latency_vs_fifo = 0;     // worst over rank counts of the skewed mix
  double plan_seconds_100k_on_1024 = 0;
};

BenchSummary run_bench(const BenchOptions& options, std::FILE* out);

}  // namespace t2::scheduler::sim
