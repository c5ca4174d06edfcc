// The simulator's own checks: every policy finishes every job without
// double-booking a rank, runs are reproducible, and t2 learns its costs.
#include "bench/scheduler/simulator.h"

#include <gtest/gtest.h>

#include "bench/scheduler/baselines.h"
#include "bench/scheduler/planner_policy.h"

namespace t2::scheduler::sim {
namespace {

TEST(Simulator, EveryPolicyFinishesEveryJob) {
  const Hardware hw;
  const Cluster cluster = make_cluster(8, true, 3);
  MixOptions mix;
  mix.jobs = 60;
  mix.seed = 5;
  const Workload w = make_mix(mix, cluster, hw);
  ASSERT_EQ(w.jobs.size(), 60u);
  for (std::size_t i = 1; i < w.jobs.size(); ++i)
    EXPECT_LE(w.jobs[i - 1].arrival, w.jobs[i].arrival);

  RoundRobin rr(16);
  Fifo fifo(16);
  PlannerPolicy t2;
  for (Policy* p : std::initializer_list<Policy*>{&rr, &fifo, &t2}) {
    SCOPED_TRACE(std::string(p->name()));
    const RunResult r = simulate(w, cluster, hw, *p, 11);  // throws on lost work
    EXPECT_GT(r.makespan, 0);
    EXPECT_GT(r.mean_latency, 0);
    EXPECT_GE(r.p99_latency, r.mean_latency * 0.5);
  }
  EXPECT_GT(t2.mape(), 0);
  EXPECT_LT(t2.mape(), 0.5);
}

TEST(Simulator, RunsAreReproducible) {
  const Hardware hw;
  const Cluster cluster = make_cluster(4, false, 1);
  MixOptions mix;
  mix.jobs = 30;
  const Workload w = make_mix(mix, cluster, hw);
  PlannerPolicy a, b;
  const RunResult ra = simulate(w, cluster, hw, a, 2);
  const RunResult rb = simulate(w, cluster, hw, b, 2);
  EXPECT_DOUBLE_EQ(ra.makespan, rb.makespan);
  EXPECT_DOUBLE_EQ(ra.mean_latency, rb.mean_latency);
  EXPECT_EQ(ra.placements, rb.placements);
}

TEST(Simulator, OfferedLoadMatchesTheWindow) {
  const Hardware hw;
  const Cluster cluster = make_cluster(16, true, 1);
  MixOptions mix;
  mix.jobs = 100;
  mix.load = 0.5;
  const Workload w = make_mix(mix, cluster, hw);
  EXPECT_NEAR(w.work / (w.window * cluster.true_capacity()), 0.5, 1e-9);
}

}  // namespace
}  // namespace t2::scheduler::sim
