// Helpers for the planner suites: jobs of one prompt per shard (max_batch 1), so
// shard order is prompt length order and placements can be computed by hand.
#pragma once

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "scheduler/planner.h"

namespace t2::scheduler::testing {

inline Job inference_job(JobId id, std::vector<std::uint32_t> tokens, int priority = 0) {
  return Job{.id = id,
             .priority = priority,
             .task = "t",
             .strategy = "s",
             .prompt_tokens = std::move(tokens)};
}

inline PlannerOptions one_prompt_per_shard() {
  PlannerOptions options;
  options.split.max_batch = 1;
  return options;
}

// (job, prompt index, rank, reason) of each placement, for compact expectations.
struct Placed {
  JobId job;
  std::uint32_t prompt;
  RankId rank;
  PlacementReason reason = PlacementReason::kPlanned;
  bool operator==(const Placed&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const Placed& p) {
  return os << "{job " << p.job << ", prompt " << p.prompt << ", rank " << p.rank << ", "
            << reason_name(p.reason) << "}";
}

inline std::vector<Placed> placed(const Planner& planner, const std::vector<Placement>& ps) {
  std::vector<Placed> out;
  for (const Placement& p : ps) {
    const auto prompts = planner.shard_prompts(p.job, p.shard);
    out.push_back({p.job, prompts.empty() ? 0u : prompts[0], p.rank, p.reason});
  }
  return out;
}

inline ShardResult result(PlacementId id, double seconds) {
  return {id, {seconds, 128, 1.0}};
}

// A result exactly as estimated (at the priors' 128 output tokens): the cost
// model learns nothing from it, so hand-computed placements stay valid.
inline ShardResult as_estimated(const Placement& p) {
  return result(p.id, p.estimated_seconds);
}

inline double end_of(const Placement& p) { return p.issued_at + p.estimated_seconds; }

}  // namespace t2::scheduler::testing
