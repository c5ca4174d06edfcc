// Training jobs in the planner: a job picked by the fair share gets a group of
// ranks sized by its estimated step time; each step splits its rollouts over the
// group by rank speed and starts when every member is free. Groups are disjoint,
// so several tasks train at once.
#include "scheduler/planner.h"

#include <algorithm>
#include <cmath>

#include "t2/log.h"

namespace t2::scheduler {

void Planner::start_group(JobState& j, double now) {
  const Job& job = j.job;

  // The job's fair share of all ranks caps the group, and so do the free ones.
  const double sharing = fair_.sharing_weight(job.priority, now);
  const double share = job.weight / std::max(sharing, job.weight);
  const auto fair = static_cast<std::size_t>(
      std::max(1.0, std::floor(double(pool_.alive()) * share)));
  const std::size_t cap = std::min(pool_.available(), fair);
  ShardSpec spec = j.spec;
  auto slice_seconds = [&](std::uint32_t prompts) {
    spec.requests = prompts;
    spec.prompt_tokens = std::uint64_t(prompts) * job.mean_prompt_tokens;
    return model_.estimate_reference(spec);
  };
  const std::size_t size = group_size(slice_seconds, job.prompts_per_step, cap, options_.group);

  // The ranks free soonest, faster first on a tie.
  std::vector<std::pair<std::pair<double, double>, RankId>> candidates;
  for (const auto& [id, r] : pool_.ranks())
    if (r.alive && !r.reserved_by) candidates.push_back({{std::max(now, r.end()), -r.eff}, id});
  const std::size_t take = std::min(size, candidates.size());
  std::partial_sort(candidates.begin(), candidates.begin() + take, candidates.end());

  for (std::size_t k = 0; k < take; ++k) {
    const RankId id = candidates[k].second;
    while (auto planned = pool_.pop_back(id)) {  // its queue goes back to other jobs
      JobState& other = jobs_.at(planned->job);
      other.shards[planned->shard].planned_on = -1;
      if (planned->reason == PlacementReason::kReissued) continue;
      other.pending.push_back(planned->shard);
      fair_.activate(other.job.id);
    }
    pool_.reserve(id, job.id);
    j.group.push_back(id);
  }
  std::sort(j.group.begin(), j.group.end());
  // LIMITATION: the group keeps this size for the job's life (it only shrinks
  // when a member is lost); regrouping at step boundaries as the load changes
  // would lift it.
  fair_.deactivate(job.id);
  training_.insert(job.id);
  t2::log::get("sched")->info("job {}: training group of {} ranks (cap {}) for {} steps",
                              job.id, take, cap, job.steps);
}

void Planner::lose_group_member(JobState& j, RankId rank, double now,
                                std::vector<Abort>& aborts) {
  j.group.erase(std::remove(j.group.begin(), j.group.end(), rank), j.group.end());

  // The step cannot all-reduce without the lost member: stop it and run it again.
  if (j.step_running) {
    for (PlacementId id : j.step_placements) {
      auto it = running_.find(id);
      if (it == running_.end()) continue;
      aborts.push_back({id, j.job.id, it->second.shard, it->second.rank,
                        AbortReason::kStepLost});
      end_running(id, now);
    }
    j.step_placements.clear();
    j.step_running = false;
    j.step_outstanding = 0;
  }
  if (j.group.empty()) {  // form a new group from scratch
    training_.erase(j.job.id);
    fair_.activate(j.job.id);
  }
}

void Planner::issue_training_steps(double now, std::vector<Placement>& out) {
  for (JobId id : training_) {
    JobState& j = jobs_.at(id);
    if (j.step_running || j.group.empty()) continue;
    bool ready = true;
    double speed_sum = 0;
    for (RankId m : j.group) {
      const RankState& r = *pool_.find(m);
      ready = ready && !r.running;
      speed_sum += r.eff;
    }
    if (!ready) continue;

    // Rollouts in proportion to speed: floors first, the remainder to the largest
    // fractions, so every member finishes at about the same time.
    // LIMITATION: a straggling member stalls its whole step (no backups for
    // training slices); moving its rollouts to the others would lift it.
    const std::uint32_t prompts = j.job.prompts_per_step;
    std::vector<std::uint32_t> share(j.group.size());
    std::vector<std::pair<double, std::size_t>> fraction;
    std::uint32_t given = 0;
    for (std::size_t k = 0; k < j.group.size(); ++k) {
      const double exact = prompts * pool_.find(j.group[k])->eff / speed_sum;
      share[k] = static_cast<std::uint32_t>(std::floor(exact));
      given += share[k];
      fraction.push_back({-(exact - share[k]), k});
    }
    std::sort(fraction.begin(), fraction.end());
    for (std::size_t k = 0; given < prompts; ++k, ++given) ++share[fraction[k].second];

    for (std::size_t k = 0; k < j.group.size(); ++k) {
      if (share[k] == 0) continue;
      const RankId rank = j.group[k];
      ShardState s;
      s.requests = share[k];
      s.prompt_tokens = std::uint64_t(share[k]) * j.job.mean_prompt_tokens;
      j.shards.push_back(s);
      const auto index = static_cast<std::uint32_t>(j.shards.size() - 1);
      Placement p = start(rank, {id, index, 0, PlacementReason::kTrainStep}, now);
      p.step = j.steps_done;
      p.group = j.group;
      j.step_placements.push_back(p.id);
      out.push_back(std::move(p));
    }
    j.step_running = true;
    j.step_outstanding = j.step_placements.size();
  }
}

}  // namespace t2::scheduler
