// Training group sizing: hand-computed step times.
#include "scheduler/group_size.h"

#include <gtest/gtest.h>

namespace t2::scheduler {
namespace {

// One second per shard plus one per prompt.
double slice(std::uint32_t prompts) { return 1.0 + prompts; }

TEST(GroupSize, StepTimeIsSlowestSlicePlusAllReduce) {
  GroupOptions o;
  o.allreduce_seconds_per_stage = 0.05;
  EXPECT_DOUBLE_EQ(step_seconds(slice, 8, 1, o), 9.0);
  EXPECT_DOUBLE_EQ(step_seconds(slice, 8, 3, o), 4.0 + 0.1);  // ceil(8/3) = 3 prompts, 2 stages
  EXPECT_DOUBLE_EQ(step_seconds(slice, 8, 8, o), 2.0 + 0.15);
}

TEST(GroupSize, CheapAllReduceUsesEveryUsefulRank) {
  GroupOptions o;
  o.allreduce_seconds_per_stage = 0.05;
  EXPECT_EQ(group_size(slice, 8, 64, o), 8u);  // never more ranks than prompts
  EXPECT_EQ(group_size(slice, 8, 4, o), 4u);   // the fair-share cap
}

TEST(GroupSize, CostlyAllReduceKeepsTheGroupSmall) {
  // Stage cost 1: T = 9, 6, 6, 5, 6, 6, 6, 5 for g = 1..8; the smallest best is 4.
  GroupOptions o;
  o.allreduce_seconds_per_stage = 1.0;
  o.tolerance = 0.0;
  EXPECT_EQ(group_size(slice, 8, 64, o), 4u);
  // Within 25 % of the best (6.25) a group of 2 suffices.
  o.tolerance = 0.25;
  EXPECT_EQ(group_size(slice, 8, 64, o), 2u);
}

TEST(GroupSize, DegenerateInputsGiveOneRank) {
  GroupOptions o;
  EXPECT_EQ(group_size(slice, 0, 8, o), 1u);
  EXPECT_EQ(group_size(slice, 8, 0, o), 1u);
}

}  // namespace
}  // namespace t2::scheduler
