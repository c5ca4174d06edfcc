// Planner: places the shards of concurrent jobs on ranks, driven by the events
// the coordinator feeds it — job submitted or cancelled, rank joined or left,
// shard finished — each with the `now` it happened at. dispatch(now) answers what
// to start where. Policy, in order: strict priority, then weighted fair share
// between jobs; within a job longest estimate first, onto the rank where it
// finishes earliest (a fast busy rank may queue it); a rank that runs dry steals
// queued work; a straggling shard gets one backup copy on an idle rank; a
// training job gets a group of ranks sized by cost, disjoint from other groups.
// Invariant: every shard of a live job is pending, planned on one rank, running
// (at most two copies) or done; every placement ends in a Completion or an Abort.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <unordered_map>
#include <vector>

#include "scheduler/cost_model.h"
#include "scheduler/fair_share.h"
#include "scheduler/group_size.h"
#include "scheduler/job.h"
#include "scheduler/rank_pool.h"
#include "scheduler/records.h"
#include "scheduler/splitter.h"

namespace t2::scheduler {

struct PlannerOptions {
  std::size_t queue_depth = 1;         // shards planned behind a rank's running one
  double straggler_factor = 3.0;       // running this many times its estimate is late...
  double straggler_min_seconds = 5.0;  // ...and at least this many seconds past it
  SplitOptions split;
  GroupOptions group;
  PlacementId first_placement_id = 1;  // continue numbering after a restart
};

struct ShardResult {
  PlacementId placement = 0;
  Measurement measured;
};

struct JobProgress {
  std::size_t shards = 0;  // training: steps
  std::size_t done = 0;
  std::size_t running = 0;
  std::size_t waiting = 0;  // pending or planned
  double remaining_seconds = 0;  // estimated work left, on the reference rank
};

class Planner {
 public:
  explicit Planner(CostModel& model, PlannerOptions options = {});

  void add_rank(RankId id, double speed, double now);
  std::vector<Abort> remove_rank(RankId id, double now);  // its work goes back to pending

  void submit(const Job& job, double now);  // throws t2::Error on a bad or duplicate job
  std::vector<Abort> cancel(JobId id, double now);

  // A placement finished. nullopt when it is no longer wanted (cancelled job,
  // losing duplicate, lost rank): the coordinator drops such results.
  std::optional<Completion> finish(const ShardResult& result, double now);

  // What to start now. Call after every event, and on a timer (every second or
  // two) so that straggling shards are noticed between events.
  std::vector<Placement> dispatch(double now);

  // Prompt indices (into Job::prompt_tokens) of an inference shard.
  std::span<const std::uint32_t> shard_prompts(JobId job, std::uint32_t shard) const;
  std::optional<JobProgress> progress(JobId job) const;
  std::size_t jobs() const { return jobs_.size(); }
  std::size_t running() const { return running_.size(); }
  const RankPool& ranks() const { return pool_; }
  const CostModel& model() const { return model_; }

 private:
  struct ShardState {
    std::uint32_t begin = 0, end = 0;  // prompts order[begin, end)
    std::uint32_t requests = 0;
    std::uint64_t prompt_tokens = 0;
    double split_estimate = 0;
    RankId planned_on = -1;
    PlacementId copies[2] = {0, 0};  // running placements: primary, backup
    bool done = false;
    bool recovered = false;  // back in pending because its rank disappeared
  };
  struct JobState {
    Job job;
    ShardSpec spec;  // shard_template(job); requests and tokens set per use
    std::vector<std::uint32_t> order;
    std::vector<ShardState> shards;
    std::vector<std::uint32_t> pending;  // ascending estimate: back() is the longest
    std::size_t done = 0;
    // Training.
    std::vector<RankId> group;
    std::uint32_t steps_done = 0;
    std::size_t step_outstanding = 0;
    bool step_running = false;
    std::vector<PlacementId> step_placements;
  };
  struct Running {
    JobId job = 0;
    std::uint32_t shard = 0;
    RankId rank = 0;
    double start = 0;
    double seconds = 0;
    PlacementReason reason = PlacementReason::kPlanned;
    double straggler_at = 0;  // key in stragglers_, 0 when not watched
  };

  const ShardSpec& spec_of(JobState& j, const ShardState& s);
  void requeue(JobState& j, std::uint32_t shard);
  void drop_copy(ShardState& s, PlacementId id);
  void end_running(PlacementId id, double now);
  void finish_job(JobId id, double now, bool cancelled);

  void start_group(JobState& j, double now);
  void lose_group_member(JobState& j, RankId rank, double now, std::vector<Abort>& aborts);
  void issue_training_steps(double now, std::vector<Placement>& out);
  void fill(double now);
  void steal(double now);
  void reissue_stragglers(double now);
  void issue(double now, std::vector<Placement>& out);
  Placement start(RankId rank, const PlannedShard& shard, double now);
  void check_time(double now);

  CostModel& model_;
  PlannerOptions options_;
  RankPool pool_;
  FairShare fair_;
  std::unordered_map<JobId, JobState> jobs_;
  std::unordered_map<PlacementId, Running> running_;
  std::set<std::pair<double, PlacementId>> stragglers_;  // (when late, placement)
  std::set<JobId> training_;                             // training jobs holding a group
  PlacementId next_id_;
  double now_ = 0;
};

}  // namespace t2::scheduler
