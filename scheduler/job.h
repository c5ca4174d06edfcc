// A job as the scheduler sees it: who it belongs to in the fair share (priority,
// weight), what every shard of it runs (task, strategy, path), and its size —
// the prompts of an inference job, or the steps of a training job.
// Invariant: an inference job has at least one prompt, a training job one step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "scheduler/types.h"

namespace t2::scheduler {

enum class JobKind : std::uint8_t { kInference = 0, kTraining = 1 };

struct Job {
  JobId id = 0;
  JobKind kind = JobKind::kInference;
  int priority = 0;     // higher runs first; equal priorities share by weight
  double weight = 1.0;  // share of the ranks relative to concurrent jobs

  std::string task;
  std::string strategy;
  Path path = Path::kDense;
  bool two_pass = false;
  std::uint32_t max_new_tokens = 256;

  // Inference: prompt tokens of each prompt, in the job's own order.
  std::vector<std::uint32_t> prompt_tokens;

  // Training: steps of `prompts_per_step` rollouts, split over a group of ranks.
  std::uint32_t steps = 0;
  std::uint32_t prompts_per_step = 0;
  std::uint32_t mean_prompt_tokens = 0;
};

// The ShardSpec every shard of `job` shares; requests and tokens are per shard.
ShardSpec shard_template(const Job& job);

// Throws t2::Error when the job cannot be scheduled (no prompts, bad weight, ...).
void validate(const Job& job);

}  // namespace t2::scheduler
