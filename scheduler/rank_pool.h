// RankPool: the planner's view of every rank — what runs there, what is queued
// behind it, when it is expected to be free, and how fast it is. Ranks with room
// in their queue sit in speed buckets ordered by expected end, so the rank where
// a shard finishes earliest is found in O(buckets + log ranks).
// Invariant: after every call each rank is filed in exactly the sets its state
// implies (room, loaded, idle), with keys equal to its current expected end;
// refile() moves it only where its membership or key changed.
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "scheduler/records.h"
#include "scheduler/types.h"

namespace t2::scheduler {

struct PlannedShard {
  JobId job = 0;
  std::uint32_t shard = 0;
  double seconds = 0;  // estimate on the rank it is planned on
  PlacementReason reason = PlacementReason::kPlanned;
};

struct RankState {
  RankId id = 0;
  double speed = 1;  // nominal, as the coordinator configured it
  double eff = 1;    // nominal times what the cost model learned
  bool alive = true;
  JobId reserved_by = 0;  // a training group holds the rank

  PlacementId running = 0;
  double run_seconds = 0;  // estimate of the running shard
  double free_at = 0;      // expected end of the running shard, or when it went idle
  std::deque<PlannedShard> planned;
  double planned_seconds = 0;

  double end() const { return free_at + planned_seconds; }

  // Where the rank is filed, under which keys (RankPool bookkeeping).
  int bucket = 0;
  bool in_room = false, in_loaded = false, in_idle = false, startable = false;
  double room_key = 0, loaded_key = 0, idle_key = 0;
};

class RankPool {
 public:
  explicit RankPool(std::size_t queue_depth) : depth_(queue_depth) {}

  void add(RankId id, double speed, double eff, double now);  // throws if present
  std::deque<PlannedShard> remove(RankId id);  // marks it gone; returns its queue
  RankState* find(RankId id);
  const RankState* find(RankId id) const;
  void set_effective_speed(RankId id, double eff);

  struct Choice {
    RankId rank = 0;
    double seconds = 0;  // the shard's estimate on that rank
    double finish = 0;
  };
  // The rank with queue room where `reference_seconds` of work finishes first.
  std::optional<Choice> earliest_finish(double reference_seconds, double now);

  void plan(RankId id, const PlannedShard& shard, double now);
  std::optional<PlannedShard> pop_back(RankId id);
  bool unplan(RankId id, JobId job, std::uint32_t shard);
  std::optional<PlannedShard> pop_front(RankId id);
  void run(RankId id, PlacementId placement, double seconds, double now);
  void stop(RankId id, double now);
  void reserve(RankId id, JobId job);
  void release(RankId id, double now);

  // Idle ranks (alive, unreserved, nothing running or planned), fastest first.
  const std::set<std::pair<double, RankId>>& idle() const { return idle_; }
  std::optional<RankId> most_loaded() const;  // the queue that ends last
  std::vector<RankId> take_startable();       // free ranks that were given work
  std::size_t alive() const { return alive_; }
  std::size_t available() const;              // alive and not in a training group
  double capacity() const { return capacity_; }  // sum of effective speeds, alive ranks
  const std::unordered_map<RankId, RankState>& ranks() const { return ranks_; }

 private:
  void refile(RankState& r);
  static int bucket_of(double eff);

  std::size_t depth_;
  std::unordered_map<RankId, RankState> ranks_;
  std::map<int, std::set<std::pair<double, RankId>>> room_;  // bucket -> (end, id)
  std::set<std::pair<double, RankId>> loaded_;               // (end, id), queue non-empty
  std::set<std::pair<double, RankId>> idle_;                 // (-eff, id)
  std::vector<RankId> startable_;
  std::size_t alive_ = 0;
  std::size_t reserved_ = 0;
  double capacity_ = 0;
};

}  // namespace t2::scheduler
