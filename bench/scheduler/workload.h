// Synthetic job mixes: many tasks whose prompt and output lengths differ by an
// order of magnitude, jobs whose sizes are heavily skewed (most are small, a few
// are huge), arriving in bursts at a rate that keeps the cluster under a chosen
// load. Each prompt's true output length is drawn up front, so every policy
// replays exactly the same work. Invariant: jobs are sorted by arrival, ids 1..n.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/scheduler/cluster.h"
#include "scheduler/job.h"

namespace t2::scheduler::sim {

struct SimJob {
  Job job;
  double arrival = 0;
  std::vector<std::uint32_t> outputs;  // true output tokens of each prompt
  double depth = 1;                    // true fraction of layers the task uses
};

struct MixOptions {
  std::size_t jobs = 100;
  double load = 0.85;          // offered work / true capacity over the arrival window
  std::size_t tasks = 24;
  double burst_size = 8;       // mean jobs per burst
  std::uint32_t max_new_tokens = 512;
  std::uint64_t seed = 1;
};

struct Workload {
  std::vector<SimJob> jobs;
  double window = 0;  // seconds over which the jobs arrive
  double work = 0;    // clean seconds on a speed-1 rank, batches of 16 in job order
};

Workload make_mix(const MixOptions& options, const Cluster& cluster, const Hardware& hw);

// The true batch of the given prompts of a job.
Batch batch_of(const SimJob& job, const std::uint32_t* prompts, std::size_t count);

}  // namespace t2::scheduler::sim
