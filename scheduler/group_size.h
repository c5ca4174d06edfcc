// How many ranks a training job's group gets. A step's rollouts split over g
// ranks take slice(ceil(p / g)) seconds and then an all-reduce of the expert's
// gradient; more ranks shorten the first and lengthen the second. The group is
// the smallest size within `tolerance` of the fastest step, capped by the job's
// fair share of the ranks. Invariant: 1 <= size <= max(1, min(cap, prompts)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace t2::scheduler {

// LIMITATION: the all-reduce cost is configured, not learned; measuring a step's
// time minus its slowest slice would learn it.
struct GroupOptions {
  double allreduce_seconds_per_stage = 0.05;  // one tree stage of the gradient all-reduce
  double tolerance = 0.1;                     // accept a step this much slower for fewer ranks
};

// slice_seconds(k): seconds one speed-1 rank needs for k prompts of a step.
double step_seconds(const std::function<double(std::uint32_t)>& slice_seconds,
                    std::uint32_t prompts, std::size_t group, const GroupOptions& options);

std::size_t group_size(const std::function<double(std::uint32_t)>& slice_seconds,
                       std::uint32_t prompts, std::size_t cap, const GroupOptions& options);

}  // namespace t2::scheduler
