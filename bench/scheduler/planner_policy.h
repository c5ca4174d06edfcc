// t2's planner in the simulator, driven exactly as the coordinator drives it:
// the cost model starts from its priors (a cold start) and learns as shards end.
#pragma once

#include "bench/scheduler/simulator.h"
#include "scheduler/planner.h"

namespace t2::scheduler::sim {

class PlannerPolicy final : public Policy {
 public:
  explicit PlannerPolicy(PlannerOptions options = {}, CostModelOptions model = {});
  std::string_view name() const override { return "t2"; }
  void add_rank(const SimRank& rank, double now) override;
  void submit(const SimJob& job, double now) override;
  void dispatch(double now, std::vector<Start>& starts) override;
  Outcome finish(PlacementId id, const Measurement& measured, double now) override;
  double mape() const override { return model_.mape(); }
  void tally(RunResult& result) const override;

  const Planner& planner() const { return planner_; }

 private:
  CostModel model_;
  Planner planner_;
  std::size_t stolen_ = 0, reissued_ = 0;
};

}  // namespace t2::scheduler::sim
