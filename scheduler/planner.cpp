// The planner's events (jobs, ranks, results) and its dispatch rounds. Training
// groups live in planner_training.cpp.
#include "scheduler/planner.h"

#include <algorithm>
#include <numeric>

#include "t2/error.h"
#include "t2/log.h"

namespace t2::scheduler {

Planner::Planner(CostModel& model, PlannerOptions options)
    : model_(model),
      options_(options),
      pool_(options.queue_depth),
      next_id_(options.first_placement_id) {}

void Planner::check_time(double now) {
  if (now < now_)
    fail("planner: time went backwards from {} to {}; pass a monotonic clock", now_, now);
  now_ = now;
}

const ShardSpec& Planner::spec_of(JobState& j, const ShardState& s) {
  j.spec.requests = s.requests;
  j.spec.prompt_tokens = s.prompt_tokens;
  return j.spec;
}

// ---- ranks ----------------------------------------------------------------

void Planner::add_rank(RankId id, double speed, double now) {
  check_time(now);
  if (!(speed > 0)) fail("rank {}: speed must be positive, found {}", id, speed);
  pool_.add(id, speed, model_.effective_speed(id, speed), now);
  fair_.set_capacity(pool_.capacity(), now);
}

std::vector<Abort> Planner::remove_rank(RankId id, double now) {
  check_time(now);
  std::vector<Abort> aborts;
  const RankState* r = pool_.find(id);
  if (!r || !r->alive) return aborts;
  const JobId group_job = r->reserved_by;
  const PlacementId running = r->running;

  // Queued work goes back to its job, to be placed first.
  for (const PlannedShard& p : pool_.remove(id)) {
    JobState& j = jobs_.at(p.job);
    ShardState& s = j.shards[p.shard];
    s.planned_on = -1;
    if (p.reason != PlacementReason::kReissued) requeue(j, p.shard);
  }

  if (running) {
    const Running run = running_.at(running);
    aborts.push_back({running, run.job, run.shard, id, AbortReason::kRankLost});
    end_running(running, now);
    JobState& j = jobs_.at(run.job);
    ShardState& s = j.shards[run.shard];
    drop_copy(s, running);
    if (run.reason != PlacementReason::kTrainStep && !s.done && !s.copies[0] &&
        s.planned_on < 0)
      requeue(j, run.shard);
  }
  if (group_job) lose_group_member(jobs_.at(group_job), id, now, aborts);
  fair_.set_capacity(pool_.capacity(), now);
  return aborts;
}

// ---- jobs -----------------------------------------------------------------

void Planner::submit(const Job& job, double now) {
  check_time(now);
  validate(job);
  if (jobs_.count(job.id)) fail("job {} was submitted twice", job.id);

  JobState j;
  j.job = job;
  j.spec = shard_template(job);
  if (job.kind == JobKind::kInference) {
    // Its fair share of the ranks, counting the jobs that share them now.
    const double others = fair_.sharing_weight(job.priority, now);
    const double share = double(pool_.available()) * job.weight / (others + job.weight);
    Split split = split_job(job, model_, share, options_.split);
    j.order = std::move(split.order);
    j.shards.reserve(split.shards.size());
    for (const ShardRange& r : split.shards) {
      ShardState s;
      s.begin = r.begin;
      s.end = r.end;
      s.requests = r.end - r.begin;
      s.prompt_tokens = r.prompt_tokens;
      s.split_estimate = r.estimate;
      j.shards.push_back(s);
    }
    // Ascending estimate so that back() is the longest; on ties the lower index last.
    j.pending.resize(j.shards.size());
    std::iota(j.pending.rbegin(), j.pending.rend(), 0u);
    std::stable_sort(j.pending.begin(), j.pending.end(), [&](std::uint32_t a, std::uint32_t b) {
      return j.shards[a].split_estimate < j.shards[b].split_estimate;
    });
  }
  // LIMITATION: the job's place in the fair share uses its size as estimated on
  // arrival, which a cold cost model may get wrong; re-estimating it as its first
  // shards report would lift it.
  double size = 0;
  for (const ShardState& s : j.shards) size += s.split_estimate;
  if (job.kind == JobKind::kTraining) {
    ShardSpec spec = j.spec;
    spec.requests = job.prompts_per_step;
    spec.prompt_tokens = std::uint64_t(job.prompts_per_step) * job.mean_prompt_tokens;
    size = model_.estimate_reference(spec) * job.steps;
  }
  jobs_.emplace(job.id, std::move(j));
  fair_.add(job.id, job.priority, job.weight, size, now);
}

void Planner::requeue(JobState& j, std::uint32_t shard) {
  ShardState& s = j.shards[shard];
  s.planned_on = -1;
  s.recovered = true;
  j.pending.push_back(shard);
  fair_.activate(j.job.id);
}

std::vector<Abort> Planner::cancel(JobId id, double now) {
  check_time(now);
  std::vector<Abort> aborts;
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return aborts;
  JobState& j = it->second;
  for (std::uint32_t i = 0; i < j.shards.size(); ++i) {
    ShardState& s = j.shards[i];
    if (s.planned_on >= 0) pool_.unplan(s.planned_on, id, i);
    for (PlacementId c : s.copies) {
      if (!c) continue;
      aborts.push_back({c, id, i, running_.at(c).rank, AbortReason::kCancelled});
      end_running(c, now);
    }
  }
  finish_job(id, now, true);
  return aborts;
}

void Planner::finish_job(JobId id, double now, bool cancelled) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  for (RankId r : it->second.group) pool_.release(r, now);
  fair_.forget(id, cancelled);
  training_.erase(id);
  jobs_.erase(it);
}

// ---- results --------------------------------------------------------------

void Planner::drop_copy(ShardState& s, PlacementId id) {
  if (s.copies[0] == id) {
    s.copies[0] = s.copies[1];
    s.copies[1] = 0;
  } else if (s.copies[1] == id) {
    s.copies[1] = 0;
  }
}

void Planner::end_running(PlacementId id, double now) {
  auto it = running_.find(id);
  if (it == running_.end()) return;
  if (it->second.straggler_at > 0) stragglers_.erase({it->second.straggler_at, id});
  pool_.stop(it->second.rank, now);
  running_.erase(it);
}

std::optional<Completion> Planner::finish(const ShardResult& result, double now) {
  check_time(now);
  auto it = running_.find(result.placement);
  if (it == running_.end()) return std::nullopt;
  const Running run = it->second;
  JobState& j = jobs_.at(run.job);
  ShardState& s = j.shards[run.shard];
  end_running(result.placement, now);
  drop_copy(s, result.placement);

  // Learn from the measurement, then let the rank's new speed re-file it.
  Completion c;
  c.id = result.placement;
  c.job = run.job;
  c.shard = run.shard;
  c.rank = run.rank;
  c.estimated_seconds = run.seconds;
  c.measured_seconds = result.measured.seconds;
  if (const RankState* r = pool_.find(run.rank)) {
    c.absolute_error = model_.observe(spec_of(j, s), run.rank, r->speed, result.measured);
    pool_.set_effective_speed(run.rank, model_.effective_speed(run.rank, r->speed));
    fair_.set_capacity(pool_.capacity(), now);
  }

  // The shard is done: stop its other copy and drop a backup still queued.
  s.done = true;
  for (PlacementId other : s.copies) {
    if (!other) continue;
    c.aborts.push_back({other, run.job, run.shard, running_.at(other).rank,
                        AbortReason::kDuplicate});
    end_running(other, now);
  }
  s.copies[0] = s.copies[1] = 0;
  if (s.planned_on >= 0) pool_.unplan(s.planned_on, run.job, run.shard);
  s.planned_on = -1;

  if (run.reason == PlacementReason::kTrainStep) {
    if (--j.step_outstanding == 0) {
      j.step_running = false;
      j.step_placements.clear();
      ++j.steps_done;
    }
    c.job_finished = j.steps_done >= j.job.steps;
  } else {
    c.job_finished = ++j.done == j.shards.size();
  }
  if (c.job_finished) finish_job(run.job, now, false);
  return c;
}

// ---- dispatch -------------------------------------------------------------

std::vector<Placement> Planner::dispatch(double now) {
  check_time(now);
  std::vector<Placement> out;
  fill(now);  // may form training groups
  issue_training_steps(now, out);
  steal(now);
  reissue_stragglers(now);
  issue(now, out);
  return out;
}

void Planner::fill(double now) {
  // Plan while some rank has nothing to do: a shard may still land behind a busy
  // rank when that rank would finish it earlier than any idle one.
  // LIMITATION: nothing is preempted: a higher priority waits for running shards
  // and the one queued per rank; revoking queued shards would shorten that wait.
  while (!pool_.idle().empty()) {
    const std::optional<JobId> top = fair_.top();
    if (!top) break;
    JobState& j = jobs_.at(*top);
    if (j.job.kind == JobKind::kTraining) {
      start_group(j, now);
      continue;
    }
    if (j.pending.empty()) {
      fair_.deactivate(*top);
      continue;
    }
    const std::uint32_t index = j.pending.back();
    ShardState& s = j.shards[index];
    const double reference = model_.estimate_reference(spec_of(j, s));
    const auto choice = pool_.earliest_finish(reference, now);
    if (!choice) break;

    const auto reason = s.recovered ? PlacementReason::kRecovered : PlacementReason::kPlanned;
    pool_.plan(choice->rank, {*top, index, choice->seconds, reason}, now);
    s.planned_on = choice->rank;
    s.recovered = false;
    j.pending.pop_back();
    if (j.pending.empty()) fair_.deactivate(*top);
  }
}

void Planner::steal(double now) {
  // A rank that ran dry takes the last shard of the queue that ends last, if it
  // would finish it sooner than the owner; the fastest dry rank steals first.
  if (pool_.idle().empty() || !pool_.most_loaded()) return;
  std::vector<RankId> thieves;
  for (const auto& entry : pool_.idle()) thieves.push_back(entry.second);
  for (RankId thief : thieves) {
    const auto victim_id = pool_.most_loaded();
    if (!victim_id) break;
    const RankState& victim = *pool_.find(*victim_id);
    const RankState& me = *pool_.find(thief);
    const PlannedShard& last = victim.planned.back();
    const double mine = last.seconds * victim.eff / me.eff;
    if (now + mine >= std::max(now, victim.end())) break;

    PlannedShard moved = *pool_.pop_back(*victim_id);
    moved.seconds = mine;
    moved.reason = PlacementReason::kStolen;
    pool_.plan(thief, moved, now);
    jobs_.at(moved.job).shards[moved.shard].planned_on = thief;
  }
}

void Planner::reissue_stragglers(double now) {
  while (!pool_.idle().empty() && !stragglers_.empty() && stragglers_.begin()->first <= now) {
    const PlacementId id = stragglers_.begin()->second;
    stragglers_.erase(stragglers_.begin());
    Running& run = running_.at(id);
    run.straggler_at = 0;
    JobState& j = jobs_.at(run.job);
    ShardState& s = j.shards[run.shard];
    if (s.copies[1] || s.planned_on >= 0) continue;  // one backup at most

    const RankState& thief = *pool_.find(pool_.idle().begin()->second);
    const double seconds = model_.estimate(spec_of(j, s), thief.id, thief.speed);
    t2::log::get("sched")->debug("job {} shard {}: running {:.1f}s on rank {} (estimate {:.1f}s),"
                                 " backup on rank {}", run.job, run.shard, now - run.start,
                                 run.rank, run.seconds, thief.id);
    pool_.plan(thief.id, {run.job, run.shard, seconds, PlacementReason::kReissued}, now);
    s.planned_on = thief.id;
  }
}

void Planner::issue(double now, std::vector<Placement>& out) {
  for (RankId id : pool_.take_startable()) {
    const RankState* r = pool_.find(id);
    if (!r || !r->alive || r->running || r->reserved_by || r->planned.empty()) continue;
    const PlannedShard shard = *pool_.pop_front(id);
    out.push_back(start(id, shard, now));
  }
}

Placement Planner::start(RankId rank, const PlannedShard& planned, double now) {
  JobState& j = jobs_.at(planned.job);
  ShardState& s = j.shards[planned.shard];
  // The estimate made when it was planned, kept current with the rank's speed;
  // a training slice is estimated here, where its size is first known.
  const RankState& r = *pool_.find(rank);
  const double seconds = planned.reason == PlacementReason::kTrainStep
                             ? model_.estimate(spec_of(j, s), rank, r.speed)
                             : planned.seconds;
  const PlacementId id = next_id_++;

  Running run{planned.job, planned.shard, rank, now, seconds, planned.reason, 0};
  const bool watched = planned.reason != PlacementReason::kReissued &&
                       planned.reason != PlacementReason::kTrainStep;
  if (watched) {
    run.straggler_at = now + std::max(options_.straggler_factor * seconds,
                                      seconds + options_.straggler_min_seconds);
    stragglers_.insert({run.straggler_at, id});
  }
  running_.emplace(id, run);
  pool_.run(rank, id, seconds, now);
  s.planned_on = -1;
  (s.copies[0] ? s.copies[1] : s.copies[0]) = id;

  Placement p;
  p.id = id;
  p.job = planned.job;
  p.shard = planned.shard;
  p.rank = rank;
  p.estimated_seconds = seconds;
  p.requests = s.requests;
  p.issued_at = now;
  p.reason = planned.reason;
  return p;
}

// ---- queries --------------------------------------------------------------

std::span<const std::uint32_t> Planner::shard_prompts(JobId job, std::uint32_t shard) const {
  auto it = jobs_.find(job);
  if (it == jobs_.end() || shard >= it->second.shards.size()) return {};
  const ShardState& s = it->second.shards[shard];
  if (s.end <= s.begin) return {};
  return {it->second.order.data() + s.begin, s.end - s.begin};
}

std::optional<JobProgress> Planner::progress(JobId id) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  const JobState& j = it->second;
  JobProgress p;
  if (j.job.kind == JobKind::kTraining) {
    p.shards = j.job.steps;
    p.done = j.steps_done;
    p.running = j.step_running ? 1 : 0;
    p.waiting = p.shards - p.done - p.running;
    return p;
  }
  ShardSpec spec = j.spec;
  p.shards = j.shards.size();
  p.done = j.done;
  for (const ShardState& s : j.shards) {
    if (s.done) continue;
    if (s.copies[0]) ++p.running; else ++p.waiting;
    spec.requests = s.requests;
    spec.prompt_tokens = s.prompt_tokens;
    p.remaining_seconds += model_.estimate_reference(spec);
  }
  return p;
}

}  // namespace t2::scheduler
