// Static longest-first placement: hand-computed plans, ties, empty inputs.
#include "scheduler/longest_first.h"

#include <gtest/gtest.h>

#include <vector>

#include "t2/error.h"

namespace t2::scheduler {
namespace {

struct Expected {
  std::size_t item;
  RankId rank;
  double start, finish;
};

void expect_plan(const std::vector<Assignment>& plan, const std::vector<Expected>& expected) {
  ASSERT_EQ(plan.size(), expected.size());
  for (std::size_t k = 0; k < plan.size(); ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(plan[k].item, expected[k].item);
    EXPECT_EQ(plan[k].rank, expected[k].rank);
    EXPECT_DOUBLE_EQ(plan[k].start, expected[k].start);
    EXPECT_DOUBLE_EQ(plan[k].finish, expected[k].finish);
  }
}

TEST(LongestFirst, EqualRanksTakeLongestOntoLeastLoaded) {
  // 5 -> r1 (tie at 0: lower id), 3 -> r2, 3 -> r2 (6 < 8), 2 -> r1 (7 < 8), 2 -> r2 (8 < 9).
  const std::vector<double> seconds{2, 3, 5, 3, 2};
  const std::vector<PlanRank> ranks{{1, 1, 0}, {2, 1, 0}};
  const auto plan = plan_longest_first(seconds, ranks);
  expect_plan(plan, {{2, 1, 0, 5}, {1, 2, 0, 3}, {3, 2, 3, 6}, {0, 1, 5, 7}, {4, 2, 6, 8}});
  EXPECT_DOUBLE_EQ(makespan(plan), 8);
}

TEST(LongestFirst, FasterRankFinishesLongShardsSooner) {
  // r1 twice as fast: 4 -> r1 [0,2]; 2 -> r2 [0,2] (2 < 3); 2 -> r1 [2,3] (3 < 4).
  const std::vector<double> seconds{4, 2, 2};
  const std::vector<PlanRank> ranks{{1, 2, 0}, {2, 1, 0}};
  expect_plan(plan_longest_first(seconds, ranks), {{0, 1, 0, 2}, {1, 2, 0, 2}, {2, 1, 2, 3}});
}

TEST(LongestFirst, TieInFinishGoesToFasterRank) {
  // r1: 0 + 2/1 = 2; r2: 1 + 2/2 = 2. Same finish: the faster r2 takes it.
  const std::vector<double> seconds{2};
  const std::vector<PlanRank> ranks{{1, 1, 0}, {2, 2, 1}};
  expect_plan(plan_longest_first(seconds, ranks), {{0, 2, 1, 2}});
}

TEST(LongestFirst, EqualEstimatesKeepInputOrderAndRankIds) {
  const std::vector<double> seconds{1, 1, 1};
  const std::vector<PlanRank> ranks{{7, 1, 0}, {3, 1, 0}};
  expect_plan(plan_longest_first(seconds, ranks), {{0, 3, 0, 1}, {1, 7, 0, 1}, {2, 3, 1, 2}});
}

TEST(LongestFirst, RespectsWhenRanksBecomeReady) {
  const std::vector<double> seconds{1};
  const std::vector<PlanRank> ranks{{1, 1, 10}, {2, 1, 4}};
  expect_plan(plan_longest_first(seconds, ranks), {{0, 2, 4, 5}});
}

TEST(LongestFirst, EmptyInputs) {
  const std::vector<PlanRank> ranks{{1, 1, 0}};
  EXPECT_TRUE(plan_longest_first({}, ranks).empty());
  EXPECT_TRUE(plan_longest_first({}, {}).empty());
  const std::vector<double> seconds{1};
  EXPECT_THROW(plan_longest_first(seconds, {}), t2::Error);
  const std::vector<PlanRank> broken{{1, 0, 0}};
  EXPECT_THROW(plan_longest_first(seconds, broken), t2::Error);
}

}  // namespace
}  // namespace t2::scheduler
