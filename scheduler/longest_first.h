// The static placement policy: longest estimate first, each shard onto the rank
// where it would finish earliest (on equal speeds, the least-loaded rank). Ties
// go to the faster rank, then the lower rank id; equal estimates keep input order.
// Invariant: every item is placed exactly once and no rank runs two at a time.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "scheduler/types.h"

namespace t2::scheduler {

struct PlanRank {
  RankId id = 0;
  double speed = 1.0;    // a shard of s reference seconds takes s / speed here
  double ready_at = 0;   // when the rank can start its first shard
};

struct Assignment {
  std::size_t item = 0;  // index into the estimates
  RankId rank = 0;
  double start = 0;
  double finish = 0;
};

// seconds[i]: estimate of item i on a speed-1 rank. Returns assignments in
// placement order. Throws t2::Error when there are items but no usable rank.
std::vector<Assignment> plan_longest_first(std::span<const double> seconds,
                                           std::span<const PlanRank> ranks);

double makespan(std::span<const Assignment> plan);

}  // namespace t2::scheduler
