// Bookkeeping of ranks for the planner: every mutation changes the rank, then
// refiles it in the ordered sets under its new keys.
#include "scheduler/rank_pool.h"

#include <algorithm>
#include <cmath>

#include "t2/error.h"

namespace t2::scheduler {

int RankPool::bucket_of(double eff) {
  return static_cast<int>(std::floor(std::log2(std::max(eff, 1e-6)) * 4));  // ~19 % wide
}

void RankPool::refile(RankState& r) {
  const bool open = r.alive && r.reserved_by == 0;
  const bool room = open && r.planned.size() < depth_ + (r.running ? 0 : 1);
  const bool loaded = r.alive && !r.planned.empty();
  const bool idle = open && !r.running && r.planned.empty();
  const int bucket = bucket_of(r.eff);
  const double end = r.end();

  if (r.in_room && (!room || r.room_key != end || r.bucket != bucket)) {
    room_[r.bucket].erase({r.room_key, r.id});
    r.in_room = false;
  }
  if (room && !r.in_room) {
    r.bucket = bucket;
    r.room_key = end;
    room_[bucket].insert({end, r.id});
    r.in_room = true;
  }
  if (r.in_loaded && (!loaded || r.loaded_key != end)) {
    loaded_.erase({r.loaded_key, r.id});
    r.in_loaded = false;
  }
  if (loaded && !r.in_loaded) {
    r.loaded_key = end;
    loaded_.insert({end, r.id});
    r.in_loaded = true;
  }
  if (r.in_idle && (!idle || r.idle_key != -r.eff)) {
    idle_.erase({r.idle_key, r.id});
    r.in_idle = false;
  }
  if (idle && !r.in_idle) {
    r.idle_key = -r.eff;
    idle_.insert({r.idle_key, r.id});
    r.in_idle = true;
  }
  if (r.alive && !r.running && !r.planned.empty() && !r.startable) {
    startable_.push_back(r.id);
    r.startable = true;
  }
}

void RankPool::add(RankId id, double speed, double eff, double now) {
  auto [it, fresh] = ranks_.try_emplace(id);
  RankState& r = it->second;
  if (!fresh && r.alive) fail("rank {} joined twice; it is already in the pool", id);
  r = RankState{};
  r.id = id;
  r.speed = speed;
  r.eff = eff;
  r.free_at = now;
  ++alive_;
  capacity_ += eff;
  refile(r);
}

std::deque<PlannedShard> RankPool::remove(RankId id) {
  RankState* r = find(id);
  if (!r || !r->alive) return {};
  if (r->reserved_by) --reserved_;
  r->alive = false;
  r->reserved_by = 0;
  r->running = 0;
  --alive_;
  capacity_ = alive_ ? std::max(0.0, capacity_ - r->eff) : 0.0;
  std::deque<PlannedShard> queue;
  queue.swap(r->planned);
  r->planned_seconds = 0;
  refile(*r);  // out of every set
  return queue;
}

RankState* RankPool::find(RankId id) {
  auto it = ranks_.find(id);
  return it == ranks_.end() ? nullptr : &it->second;
}

const RankState* RankPool::find(RankId id) const {
  auto it = ranks_.find(id);
  return it == ranks_.end() ? nullptr : &it->second;
}

void RankPool::set_effective_speed(RankId id, double eff) {
  RankState* r = find(id);
  // Re-filing costs set operations on every finish; a speed that moved by less
  // than 2 % changes no decision worth that.
  if (!r || !r->alive || std::abs(eff - r->eff) < 0.02 * r->eff) return;
  const double scale = r->eff / eff;  // queued estimates were made at the old speed
  for (PlannedShard& s : r->planned) s.seconds *= scale;
  r->planned_seconds *= scale;
  capacity_ += eff - r->eff;
  r->eff = eff;
  refile(*r);
}

std::optional<RankPool::Choice> RankPool::earliest_finish(double reference_seconds,
                                                          double now) {
  std::optional<Choice> best;
  for (auto it = room_.rbegin(); it != room_.rend(); ++it) {  // fastest bucket first
    auto& bucket = it->second;
    // A running rank past its expected end is late by an unknown amount: guess
    // half its estimate more, and look again at the bucket's front.
    while (!bucket.empty()) {
      RankState& r = ranks_.at(bucket.begin()->second);
      if (!r.running || r.free_at >= now) break;
      r.free_at = now + 0.5 * r.run_seconds;
      refile(r);
    }
    if (bucket.empty()) continue;
    const RankState& r = ranks_.at(bucket.begin()->second);
    const double seconds = reference_seconds / r.eff;
    const double finish = std::max(now, r.end()) + seconds;
    if (!best || finish < best->finish) best = Choice{r.id, seconds, finish};
  }
  return best;
}

void RankPool::plan(RankId id, const PlannedShard& shard, double now) {
  RankState& r = ranks_.at(id);
  if (!r.running) r.free_at = std::max(r.free_at, now);
  r.planned.push_back(shard);
  r.planned_seconds += shard.seconds;
  refile(r);
}

std::optional<PlannedShard> RankPool::pop_back(RankId id) {
  RankState& r = ranks_.at(id);
  if (r.planned.empty()) return std::nullopt;
  PlannedShard s = r.planned.back();
  r.planned.pop_back();
  r.planned_seconds = std::max(0.0, r.planned_seconds - s.seconds);
  refile(r);
  return s;
}

bool RankPool::unplan(RankId id, JobId job, std::uint32_t shard) {
  RankState* r = find(id);
  if (!r) return false;
  auto it = std::find_if(r->planned.begin(), r->planned.end(), [&](const PlannedShard& s) {
    return s.job == job && s.shard == shard;
  });
  if (it == r->planned.end()) return false;
  r->planned_seconds = std::max(0.0, r->planned_seconds - it->seconds);
  r->planned.erase(it);
  refile(*r);
  return true;
}

std::optional<PlannedShard> RankPool::pop_front(RankId id) {
  RankState& r = ranks_.at(id);
  if (r.planned.empty()) return std::nullopt;
  PlannedShard s = r.planned.front();
  r.planned.pop_front();
  r.planned_seconds = std::max(0.0, r.planned_seconds - s.seconds);
  refile(r);
  return s;
}

void RankPool::run(RankId id, PlacementId placement, double seconds, double now) {
  RankState& r = ranks_.at(id);
  r.running = placement;
  r.run_seconds = seconds;
  r.free_at = now + seconds;
  refile(r);
}

void RankPool::stop(RankId id, double now) {
  RankState* r = find(id);
  if (!r || !r->alive) return;
  r->running = 0;
  r->run_seconds = 0;
  r->free_at = now;
  refile(*r);
}

void RankPool::reserve(RankId id, JobId job) {
  RankState& r = ranks_.at(id);
  if (!r.reserved_by) ++reserved_;
  r.reserved_by = job;
  refile(r);
}

void RankPool::release(RankId id, double now) {
  RankState* r = find(id);
  if (!r || !r->alive || !r->reserved_by) return;
  r->reserved_by = 0;
  --reserved_;
  if (!r->running) r->free_at = std::max(r->free_at, now);
  refile(*r);
}

std::optional<RankId> RankPool::most_loaded() const {
  if (loaded_.empty()) return std::nullopt;
  return loaded_.rbegin()->second;
}

std::vector<RankId> RankPool::take_startable() {
  std::vector<RankId> out;
  out.swap(startable_);
  for (RankId id : out) ranks_.at(id).startable = false;
  return out;
}

std::size_t RankPool::available() const { return alive_ - reserved_; }

}  // namespace t2::scheduler
