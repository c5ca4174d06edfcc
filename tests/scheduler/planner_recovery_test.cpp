// The planner when the world changes under it: a rank disappears, a job is
// cancelled mid-plan. Nothing is lost, nothing runs twice, stale results drop.
#include "scheduler/planner.h"

#include <gtest/gtest.h>

#include "planner_fixture.h"

namespace t2::scheduler {
namespace {

using testing::inference_job;
using testing::one_prompt_per_shard;
using testing::Placed;
using testing::placed;
using testing::result;
using R = PlacementReason;

TEST(PlannerRecovery, LostRanksShardRunsAgainElsewhere) {
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  planner.add_rank(1, 1.0, 0);
  planner.add_rank(2, 1.0, 0);
  planner.submit(inference_job(1, {200, 100}), 0);
  const auto first = planner.dispatch(0);
  ASSERT_EQ(placed(planner, first), (std::vector<Placed>{{1, 0, 1}, {1, 1, 2}}));

  const auto aborts = planner.remove_rank(2, 0.5);
  ASSERT_EQ(aborts.size(), 1u);
  EXPECT_EQ(aborts[0].id, first[1].id);
  EXPECT_EQ(aborts[0].reason, AbortReason::kRankLost);
  EXPECT_TRUE(planner.dispatch(0.5).empty());  // rank 1 is busy

  EXPECT_FALSE(planner.finish(result(first[1].id, 1.0), 1.0));  // from the lost rank
  planner.finish(result(first[0].id, 1.5), 1.5);
  const auto again = planner.dispatch(1.5);
  EXPECT_EQ(placed(planner, again), (std::vector<Placed>{{1, 1, 1, R::kRecovered}}));
  EXPECT_TRUE(planner.finish(result(again[0].id, 1.0), 2.5)->job_finished);
}

TEST(PlannerRecovery, QueuedWorkOfALostRankIsPlacedAgain) {
  // Rank 1 (speed 4) runs the longest shard with the next one queued behind it.
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  planner.add_rank(1, 4.0, 0);
  planner.add_rank(2, 1.0, 0);
  planner.submit(inference_job(1, {300, 200, 100}), 0);
  const auto first = planner.dispatch(0);
  ASSERT_EQ(planner.ranks().find(1)->planned.size(), 1u);

  const auto aborts = planner.remove_rank(1, 0.1);
  ASSERT_EQ(aborts.size(), 1u);
  EXPECT_EQ(aborts[0].id, first[0].id);
  planner.finish(result(first[1].id, 1.0), 1.0);
  // Recovered work goes first; between the two the longer one leads.
  const auto next = planner.dispatch(1.0);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].rank, 2);
  EXPECT_EQ(next[0].reason, R::kRecovered);
}

TEST(PlannerRecovery, ARankCanLeaveAndComeBack) {
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  planner.add_rank(1, 1.0, 0);
  planner.remove_rank(1, 1);
  planner.submit(inference_job(1, {10}), 1);
  EXPECT_TRUE(planner.dispatch(1).empty());
  planner.add_rank(1, 1.0, 2);
  EXPECT_EQ(placed(planner, planner.dispatch(2)), (std::vector<Placed>{{1, 0, 1}}));
}

TEST(PlannerRecovery, CancelledJobStopsAndFreesItsRanks) {
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  planner.add_rank(1, 1.0, 0);
  planner.add_rank(2, 1.0, 0);
  planner.submit(inference_job(1, {300, 200, 100}), 0);
  const auto first = planner.dispatch(0);  // two running, one pending
  ASSERT_EQ(first.size(), 2u);
  planner.submit(inference_job(2, {50}), 0.2);

  const auto aborts = planner.cancel(1, 0.5);
  ASSERT_EQ(aborts.size(), 2u);
  for (const Abort& a : aborts) EXPECT_EQ(a.reason, AbortReason::kCancelled);
  EXPECT_FALSE(planner.progress(1));

  // Job 2 takes a freed rank; job 1's pending shard is gone for good.
  EXPECT_EQ(placed(planner, planner.dispatch(0.5)), (std::vector<Placed>{{2, 0, 1}}));
  EXPECT_FALSE(planner.finish(result(first[0].id, 1.0), 1.0));
  EXPECT_EQ(planner.running(), 1u);
  EXPECT_EQ(planner.jobs(), 1u);
}

TEST(PlannerRecovery, CancelRemovesQueuedWorkFromRanks) {
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  planner.add_rank(1, 4.0, 0);
  planner.add_rank(2, 1.0, 0);
  planner.submit(inference_job(1, {300, 200, 100}), 0);
  planner.dispatch(0);
  ASSERT_EQ(planner.ranks().find(1)->planned.size(), 1u);
  planner.cancel(1, 0.1);
  EXPECT_TRUE(planner.ranks().find(1)->planned.empty());
  EXPECT_EQ(planner.running(), 0u);
  EXPECT_EQ(planner.ranks().idle().size(), 2u);
}

}  // namespace
}  // namespace t2::scheduler
