// Splits an inference job into shards of similar estimated cost: prompts sorted
// longest first, then cut into consecutive batches that stay under a target
// number of seconds and a batch-size cap. The target spreads the job over the
// ranks it may use, but never so thin that the fixed cost of a shard (its decode
// steps, its overhead) dominates. Invariant: every prompt lands in exactly one
// shard, and no shard is empty or larger than max_batch.
#pragma once

#include <cstdint>
#include <vector>

#include "scheduler/cost_model.h"
#include "scheduler/job.h"

namespace t2::scheduler {

struct SplitOptions {
  std::uint32_t max_batch = 16;     // requests one rank generates together
  double min_shard_seconds = 2.0;   // smaller shards spend too much on overhead
  double max_shard_seconds = 60.0;  // larger ones make stragglers and lost ranks costly
  double max_overhead = 0.5;        // most of a shard's cost its fixed part may be
};

// Prompts order[begin, end) form one shard.
struct ShardRange {
  std::uint32_t begin = 0;
  std::uint32_t end = 0;
  std::uint64_t prompt_tokens = 0;
  double estimate = 0;  // seconds on the reference rank when split
};

struct Split {
  std::vector<std::uint32_t> order;  // prompt indices, longest prompt first
  std::vector<ShardRange> shards;
};

// ranks: how many ranks the job may use at once (its fair share of the free ones).
// LIMITATION: a job is cut once, for the load at submission; re-cutting its
// pending shards when the load changes would lift it.
Split split_job(const Job& job, const CostModel& model, double ranks,
                const SplitOptions& options = {});

}  // namespace t2::scheduler
