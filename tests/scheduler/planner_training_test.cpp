// Training jobs in the planner: groups sized by cost and fair share, disjoint
// between concurrent jobs, steps in lockstep, a lost member reruns the step.
#include "scheduler/planner.h"

#include <gtest/gtest.h>

#include <set>

#include "planner_fixture.h"

namespace t2::scheduler {
namespace {

using testing::inference_job;
using testing::result;

Job training_job(JobId id, std::uint32_t prompts, std::uint32_t steps) {
  return Job{.id = id,
             .kind = JobKind::kTraining,
             .task = "t",
             .strategy = "train",
             .path = Path::kFactored,
             .prompt_tokens = {},
             .steps = steps,
             .prompts_per_step = prompts,
             .mean_prompt_tokens = 100};
}

PlannerOptions free_allreduce() {
  PlannerOptions o;
  o.group.allreduce_seconds_per_stage = 0;  // more ranks are always faster...
  o.group.tolerance = 0;                    // ...and wanted
  return o;
}

std::set<RankId> ranks_of(const std::vector<Placement>& ps, JobId job) {
  std::set<RankId> out;
  for (const Placement& p : ps)
    if (p.job == job) out.insert(p.rank);
  return out;
}

TEST(PlannerTraining, ConcurrentJobsGetDisjointFairGroups) {
  CostModel model;
  Planner planner(model, free_allreduce());
  for (RankId r = 1; r <= 8; ++r) planner.add_rank(r, 1.0, 0);
  planner.submit(training_job(1, 8, 2), 0);
  planner.submit(training_job(2, 8, 2), 0);

  // Two jobs share 8 ranks: each gets 4, and each member 2 of the 8 rollouts.
  const auto step0 = planner.dispatch(0);
  ASSERT_EQ(step0.size(), 8u);
  EXPECT_EQ(ranks_of(step0, 1), (std::set<RankId>{1, 2, 3, 4}));
  EXPECT_EQ(ranks_of(step0, 2), (std::set<RankId>{5, 6, 7, 8}));
  for (const Placement& p : step0) {
    EXPECT_EQ(p.reason, PlacementReason::kTrainStep);
    EXPECT_EQ(p.requests, 2u);
    EXPECT_EQ(p.step, 0u);
    EXPECT_EQ(p.group.size(), 4u);
  }
}

TEST(PlannerTraining, StepsRunInLockstepUntilTheJobEnds) {
  CostModel model;
  Planner planner(model, free_allreduce());
  for (RankId r = 1; r <= 4; ++r) planner.add_rank(r, 1.0, 0);
  planner.submit(training_job(1, 4, 2), 0);
  const auto step0 = planner.dispatch(0);
  ASSERT_EQ(step0.size(), 4u);

  for (int k = 0; k < 3; ++k) planner.finish(result(step0[k].id, 1.0), 1.0);
  EXPECT_TRUE(planner.dispatch(1.0).empty());  // one member still runs step 0
  planner.finish(result(step0[3].id, 1.2), 1.2);
  const auto step1 = planner.dispatch(1.2);
  ASSERT_EQ(step1.size(), 4u);
  EXPECT_EQ(step1[0].step, 1u);

  for (int k = 0; k < 3; ++k)
    EXPECT_FALSE(planner.finish(result(step1[k].id, 1.0), 2.2)->job_finished);
  EXPECT_TRUE(planner.finish(result(step1[3].id, 1.0), 2.2)->job_finished);

  // The group is released: inference work gets the ranks back.
  planner.submit(inference_job(2, {10, 10, 10, 10}), 2.2);
  EXPECT_FALSE(planner.dispatch(2.2).empty());
  EXPECT_EQ(planner.ranks().available(), 4u);
}

TEST(PlannerTraining, CostlyAllReduceMeansASmallGroup) {
  CostModel model;
  PlannerOptions o;
  o.group.allreduce_seconds_per_stage = 1000;
  Planner planner(model, o);
  for (RankId r = 1; r <= 8; ++r) planner.add_rank(r, 1.0, 0);
  planner.submit(training_job(1, 8, 1), 0);
  const auto step0 = planner.dispatch(0);
  ASSERT_EQ(step0.size(), 1u);
  EXPECT_EQ(step0[0].requests, 8u);
}

TEST(PlannerTraining, LostMemberRerunsTheStepOnTheSurvivors) {
  CostModel model;
  Planner planner(model, free_allreduce());
  for (RankId r = 1; r <= 4; ++r) planner.add_rank(r, 1.0, 0);
  planner.submit(training_job(1, 8, 1), 0);
  const auto step0 = planner.dispatch(0);
  ASSERT_EQ(step0.size(), 4u);
  planner.finish(result(step0[0].id, 1.0), 1.0);

  // The step's other slices stop: the all-reduce cannot happen without rank 4.
  const auto aborts = planner.remove_rank(4, 1.5);
  ASSERT_EQ(aborts.size(), 3u);
  EXPECT_EQ(aborts[0].reason, AbortReason::kRankLost);
  EXPECT_EQ(aborts[1].reason, AbortReason::kStepLost);

  // 8 rollouts over 3 equal ranks: 3, 3, 2.
  const auto again = planner.dispatch(1.5);
  ASSERT_EQ(again.size(), 3u);
  EXPECT_EQ(again[0].requests + again[1].requests + again[2].requests, 8u);
  EXPECT_EQ(again[0].requests, 3u);
  EXPECT_EQ(again[2].requests, 2u);
  EXPECT_EQ(again[0].step, 0u);
  EXPECT_EQ(again[0].group, (std::vector<RankId>{1, 2, 3}));
}

TEST(PlannerTraining, CancelReleasesTheGroup) {
  CostModel model;
  Planner planner(model, free_allreduce());
  for (RankId r = 1; r <= 4; ++r) planner.add_rank(r, 1.0, 0);
  planner.submit(training_job(1, 4, 5), 0);
  ASSERT_EQ(planner.dispatch(0).size(), 4u);
  EXPECT_EQ(planner.cancel(1, 1).size(), 4u);
  EXPECT_EQ(planner.ranks().available(), 4u);
  EXPECT_EQ(planner.ranks().idle().size(), 4u);
}

}  // namespace
}  // namespace t2::scheduler
