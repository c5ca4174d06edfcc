// The planner's placement policies with hand-computed expected placements.
// With max_batch 1 every prompt is a shard, longer prompts cost a little more,
// and at the priors every shard costs about 1.5 s on a speed-1 rank.
#include "scheduler/planner.h"

#include <gtest/gtest.h>

#include "planner_fixture.h"
#include "t2/error.h"

namespace t2::scheduler {
namespace {

using testing::inference_job;
using testing::one_prompt_per_shard;
using testing::Placed;
using testing::placed;
using testing::as_estimated;
using testing::end_of;
using testing::result;
using R = PlacementReason;

TEST(Planner, LongestFirstOntoTheLeastLoadedRank) {
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  planner.add_rank(1, 1.0, 0);
  planner.add_rank(2, 1.0, 0);
  planner.submit(inference_job(1, {100, 400, 200, 300}), 0);

  // 400 -> r1 (both idle: lower id), 300 -> r2 (idle beats queueing behind r1).
  const auto first = planner.dispatch(0);
  EXPECT_EQ(placed(planner, first), (std::vector<Placed>{{1, 1, 1}, {1, 3, 2}}));

  // r2 ends first and takes the next longest; r1 then takes the last, since
  // r2's queue (its running shard plus this one) would end later.
  ASSERT_TRUE(planner.finish(as_estimated(first[1]), end_of(first[1])));
  const auto second = planner.dispatch(end_of(first[1]));
  EXPECT_EQ(placed(planner, second), (std::vector<Placed>{{1, 2, 2}}));
  ASSERT_TRUE(planner.finish(as_estimated(first[0]), end_of(first[0])));
  const auto third = planner.dispatch(end_of(first[0]));
  ASSERT_EQ(placed(planner, third), (std::vector<Placed>{{1, 0, 1}}));

  EXPECT_FALSE(planner.finish(as_estimated(second[0]), end_of(second[0]))->job_finished);
  const auto last = planner.finish(as_estimated(third[0]), end_of(third[0]));
  ASSERT_TRUE(last);
  EXPECT_TRUE(last->job_finished);
  EXPECT_NEAR(model.mape(), 0.0, 1e-12);  // every shard took exactly its estimate
  EXPECT_EQ(planner.jobs(), 0u);
}

TEST(Planner, TiesGoToTheLowerShardAndTheLowerRank) {
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  planner.add_rank(5, 1.0, 0);
  planner.add_rank(3, 1.0, 0);
  planner.submit(inference_job(1, {50, 50, 50}), 0);
  EXPECT_EQ(placed(planner, planner.dispatch(0)), (std::vector<Placed>{{1, 0, 3}, {1, 1, 5}}));
}

TEST(Planner, CompletionCarriesEstimateAndMeasurement) {
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  planner.add_rank(1, 2.0, 0);
  planner.submit(inference_job(9, {100}), 0);
  const auto ps = planner.dispatch(0);
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].id, 1u);
  EXPECT_EQ(ps[0].requests, 1u);
  EXPECT_NEAR(ps[0].estimated_seconds, model.estimate_reference([] {
                ShardSpec s;
                s.task = "t";
                s.strategy = "s";
                s.prompt_tokens = 100;
                return s;
              }()) / 2.0, 1e-9);
  const auto c = planner.finish(result(ps[0].id, 3.0), 3.0);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->job, 9u);
  EXPECT_EQ(c->rank, 1);
  EXPECT_DOUBLE_EQ(c->estimated_seconds, ps[0].estimated_seconds);
  EXPECT_DOUBLE_EQ(c->measured_seconds, 3.0);
  EXPECT_NEAR(c->absolute_error, std::abs(ps[0].estimated_seconds - 3.0) / 3.0, 1e-9);
  EXPECT_TRUE(c->job_finished);
  EXPECT_EQ(model.observations(), 1u);
}

TEST(Planner, EmptyInputs) {
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  EXPECT_TRUE(planner.dispatch(0).empty());  // no ranks, no jobs
  planner.submit(inference_job(1, {10, 20}), 0);
  EXPECT_TRUE(planner.dispatch(1).empty());  // no ranks yet: the job waits
  planner.add_rank(1, 1.0, 2);
  EXPECT_EQ(planner.dispatch(2).size(), 1u);

  EXPECT_THROW(planner.submit(inference_job(2, {}), 2), t2::Error);
  EXPECT_THROW(planner.submit(inference_job(1, {5}), 2), t2::Error);  // duplicate id
  EXPECT_THROW(planner.add_rank(1, 1.0, 2), t2::Error);               // joined twice
  EXPECT_THROW(planner.add_rank(2, 0.0, 2), t2::Error);               // no speed
  EXPECT_THROW(planner.dispatch(1), t2::Error);                       // time went back
  EXPECT_FALSE(planner.finish(result(999, 1.0), 3));                  // unknown placement
  EXPECT_TRUE(planner.cancel(42, 3).empty());                         // unknown job
  EXPECT_TRUE(planner.remove_rank(42, 3).empty());                    // unknown rank
}

TEST(Planner, HigherPriorityTakesTheNextFreeRank) {
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  planner.add_rank(1, 1.0, 0);
  planner.submit(inference_job(1, {100, 100}), 0);
  const auto first = planner.dispatch(0);
  planner.submit(inference_job(2, {100}, /*priority=*/5), 0.5);
  EXPECT_TRUE(planner.dispatch(0.5).empty());  // the rank is busy; nothing is preempted
  planner.finish(result(first[0].id, 1.0), 1.0);
  EXPECT_EQ(placed(planner, planner.dispatch(1.0)), (std::vector<Placed>{{2, 0, 1}}));
}

TEST(Planner, SmallJobIsNotStuckBehindABigOne) {
  // Fair sojourn: the small job's virtual finish (0.5 + ~1.5) comes before the
  // big one's (0 + 4 * ~1.5), so it gets the rank as soon as it is free.
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  planner.add_rank(1, 1.0, 0);
  planner.submit(inference_job(1, {100, 100, 100, 100}), 0);
  const auto first = planner.dispatch(0);
  planner.submit(inference_job(2, {100}), 0.5);
  planner.finish(result(first[0].id, 1.0), 1.0);
  EXPECT_EQ(placed(planner, planner.dispatch(1.0)), (std::vector<Placed>{{2, 0, 1}}));
}

// Rank 1 is four times as fast as rank 2. Shards cost about the same, so the
// second-longest finishes sooner queued behind rank 1 (e/4 + e/4) than alone on
// rank 2 (e): it is queued there, and the shortest goes to rank 2.
class Heterogeneous : public ::testing::Test {
 protected:
  void SetUp() override {
    planner.add_rank(1, 4.0, 0);
    planner.add_rank(2, 1.0, 0);
    planner.submit(inference_job(1, {300, 200, 100}), 0);
    first = planner.dispatch(0);
  }
  CostModel model;
  Planner planner{model, one_prompt_per_shard()};
  std::vector<Placement> first;
};

TEST_F(Heterogeneous, FastBusyRankQueuesWhatItWouldFinishFirst) {
  EXPECT_EQ(placed(planner, first), (std::vector<Placed>{{1, 0, 1}, {1, 2, 2}}));
  EXPECT_EQ(planner.ranks().find(1)->planned.size(), 1u);
  planner.finish(result(first[0].id, 0.4), 0.4);
  EXPECT_EQ(placed(planner, planner.dispatch(0.4)), (std::vector<Placed>{{1, 1, 1}}));
}

TEST_F(Heterogeneous, ARankThatRunsDryStealsQueuedWork) {
  planner.add_rank(3, 4.0, 0.1);
  EXPECT_EQ(placed(planner, planner.dispatch(0.1)),
            (std::vector<Placed>{{1, 1, 3, R::kStolen}}));
  EXPECT_TRUE(planner.ranks().find(1)->planned.empty());
}

TEST_F(Heterogeneous, NoStealWhenTheThiefWouldFinishLater) {
  planner.add_rank(3, 0.25, 0.1);  // e / 0.25 is far beyond rank 1's e/4 + e/4
  EXPECT_TRUE(planner.dispatch(0.1).empty());
}

TEST(Planner, StragglerGetsOneBackupAndTheFirstCopyWins) {
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  planner.add_rank(1, 1.0, 0);
  planner.add_rank(2, 1.0, 0);
  planner.submit(inference_job(1, {100}), 0);
  const auto first = planner.dispatch(0);
  ASSERT_EQ(first.size(), 1u);
  // Late means past max(3 * estimate, estimate + 5 s), about 6.5 s.
  EXPECT_TRUE(planner.dispatch(5.0).empty());
  const auto backup = planner.dispatch(7.0);
  EXPECT_EQ(placed(planner, backup), (std::vector<Placed>{{1, 0, 2, R::kReissued}}));
  EXPECT_TRUE(planner.dispatch(7.5).empty());  // one backup at most

  const auto c = planner.finish(result(backup[0].id, 1.5), 8.5);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->job_finished);
  ASSERT_EQ(c->aborts.size(), 1u);
  EXPECT_EQ(c->aborts[0].id, first[0].id);
  EXPECT_EQ(c->aborts[0].reason, AbortReason::kDuplicate);
  EXPECT_FALSE(planner.finish(result(first[0].id, 9.0), 9.0));  // the loser is dropped
  EXPECT_EQ(planner.running(), 0u);
}

TEST(Planner, ProgressCountsShards) {
  CostModel model;
  Planner planner(model, one_prompt_per_shard());
  planner.add_rank(1, 1.0, 0);
  planner.submit(inference_job(1, {10, 20, 30}), 0);
  planner.dispatch(0);
  const auto p = planner.progress(1);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->shards, 3u);
  EXPECT_EQ(p->running, 1u);
  EXPECT_EQ(p->waiting, 2u);
  EXPECT_GT(p->remaining_seconds, 0);
  EXPECT_FALSE(planner.progress(2));
}

}  // namespace
}  // namespace t2::scheduler
