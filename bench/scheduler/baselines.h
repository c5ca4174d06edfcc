// The peers t2's planner is measured against, both reasonable simple placements
// that cut every job into batches of `batch` prompts in the job's own order:
//   RoundRobin — at arrival, batches are dealt to ranks in turn (the turn carries
//                over between jobs); each rank runs its own queue in order.
//   Fifo       — one global queue, job by job in arrival order; any free rank
//                takes the next batch (the longest-idle rank first).
#pragma once

#include <deque>
#include <unordered_map>
#include <vector>

#include "bench/scheduler/simulator.h"

namespace t2::scheduler::sim {

class FixedBatches : public Policy {
 public:
  explicit FixedBatches(std::uint32_t batch) : batch_(batch) {}
  Outcome finish(PlacementId id, const Measurement& measured, double now) override;

 protected:
  struct Shard {
    JobId job;
    std::uint32_t begin, end;
  };
  std::vector<Shard> cut(const SimJob& job);
  Start start(const Shard& shard, RankId rank);
  virtual void rank_freed(RankId rank) = 0;

 private:
  struct JobInfo {
    std::vector<std::uint32_t> identity;  // prompt indices 0..n-1
    std::size_t remaining = 0;
  };
  std::uint32_t batch_;
  std::unordered_map<JobId, JobInfo> jobs_;
  std::unordered_map<PlacementId, std::pair<RankId, JobId>> running_;
  PlacementId next_id_ = 1;
};

class RoundRobin final : public FixedBatches {
 public:
  using FixedBatches::FixedBatches;
  std::string_view name() const override { return "round-robin"; }
  void add_rank(const SimRank& rank, double now) override;
  void submit(const SimJob& job, double now) override;
  void dispatch(double now, std::vector<Start>& starts) override;

 private:
  void rank_freed(RankId rank) override;
  struct Queue {
    std::deque<Shard> shards;
    bool busy = false;
  };
  std::vector<RankId> order_;
  std::unordered_map<RankId, Queue> queues_;
  std::vector<RankId> touched_;
  std::size_t turn_ = 0;
};

class Fifo final : public FixedBatches {
 public:
  using FixedBatches::FixedBatches;
  std::string_view name() const override { return "fifo"; }
  void add_rank(const SimRank& rank, double now) override;
  void submit(const SimJob& job, double now) override;
  void dispatch(double now, std::vector<Start>& starts) override;

 private:
  void rank_freed(RankId rank) override { free_.push_back(rank); }
  std::deque<Shard> queue_;
  std::deque<RankId> free_;
};

}  // namespace t2::scheduler::sim
