// Round-robin and FIFO placement of fixed-size batches.
#include "bench/scheduler/baselines.h"

#include <algorithm>
#include <numeric>

namespace t2::scheduler::sim {

std::vector<FixedBatches::Shard> FixedBatches::cut(const SimJob& job) {
  const auto n = static_cast<std::uint32_t>(job.outputs.size());
  JobInfo& info = jobs_[job.job.id];
  info.identity.resize(n);
  std::iota(info.identity.begin(), info.identity.end(), 0u);
  std::vector<Shard> shards;
  for (std::uint32_t b = 0; b < n; b += batch_)
    shards.push_back({job.job.id, b, std::min(n, b + batch_)});
  info.remaining = shards.size();
  return shards;
}

Start FixedBatches::start(const Shard& shard, RankId rank) {
  const PlacementId id = next_id_++;
  running_[id] = {rank, shard.job};
  const auto& identity = jobs_.at(shard.job).identity;
  return {id, rank, shard.job, {identity.data() + shard.begin, shard.end - shard.begin}};
}

Outcome FixedBatches::finish(PlacementId id, const Measurement&, double) {
  Outcome outcome;
  auto it = running_.find(id);
  if (it == running_.end()) return {false, false, {}};
  const auto [rank, job] = it->second;
  running_.erase(it);
  rank_freed(rank);
  auto j = jobs_.find(job);
  if (--j->second.remaining == 0) {
    outcome.job_finished = true;
    jobs_.erase(j);
  }
  return outcome;
}

// ---- round-robin ------------------------------------------------------------

void RoundRobin::add_rank(const SimRank& rank, double) {
  order_.push_back(rank.id);
  queues_[rank.id];
}

void RoundRobin::submit(const SimJob& job, double) {
  for (const Shard& s : cut(job)) {
    const RankId rank = order_[turn_++ % order_.size()];
    queues_[rank].shards.push_back(s);
    touched_.push_back(rank);
  }
}

void RoundRobin::rank_freed(RankId rank) {
  queues_[rank].busy = false;
  touched_.push_back(rank);
}

void RoundRobin::dispatch(double, std::vector<Start>& starts) {
  for (RankId rank : touched_) {
    Queue& q = queues_[rank];
    if (q.busy || q.shards.empty()) continue;
    starts.push_back(start(q.shards.front(), rank));
    q.shards.pop_front();
    q.busy = true;
  }
  touched_.clear();
}

// ---- FIFO -------------------------------------------------------------------

void Fifo::add_rank(const SimRank& rank, double) { free_.push_back(rank.id); }

void Fifo::submit(const SimJob& job, double) {
  for (const Shard& s : cut(job)) queue_.push_back(s);
}

void Fifo::dispatch(double, std::vector<Start>& starts) {
  while (!free_.empty() && !queue_.empty()) {
    starts.push_back(start(queue_.front(), free_.front()));
    queue_.pop_front();
    free_.pop_front();
  }
}

}  // namespace t2::scheduler::sim
