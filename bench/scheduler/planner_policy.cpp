// Adapter from the simulator's Policy to scheduler::Planner.
#include "bench/scheduler/planner_policy.h"

namespace t2::scheduler::sim {

PlannerPolicy::PlannerPolicy(PlannerOptions options, CostModelOptions model)
    : model_(model), planner_(model_, options) {}

void PlannerPolicy::add_rank(const SimRank& rank, double now) {
  planner_.add_rank(rank.id, rank.nominal_speed, now);  // the planner never sees true speed
}

void PlannerPolicy::submit(const SimJob& job, double now) { planner_.submit(job.job, now); }

void PlannerPolicy::dispatch(double now, std::vector<Start>& starts) {
  for (const Placement& p : planner_.dispatch(now)) {
    starts.push_back({p.id, p.rank, p.job, planner_.shard_prompts(p.job, p.shard)});
    stolen_ += p.reason == PlacementReason::kStolen;
    reissued_ += p.reason == PlacementReason::kReissued;
  }
}

void PlannerPolicy::tally(RunResult& result) const {
  result.stolen = stolen_;
  result.reissued = reissued_;
}

Outcome PlannerPolicy::finish(PlacementId id, const Measurement& measured, double now) {
  Outcome outcome;
  const auto completion = planner_.finish({id, measured}, now);
  if (!completion) return {false, false, {}};
  outcome.job_finished = completion->job_finished;
  for (const Abort& a : completion->aborts) outcome.aborted.push_back(a.id);
  return outcome;
}

}  // namespace t2::scheduler::sim
