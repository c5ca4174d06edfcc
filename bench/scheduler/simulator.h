// An event-driven simulation of the coordinator's loop: jobs arrive at their
// times, a policy says which shard starts on which rank, the shard's true
// duration (cluster.h) decides when it finishes, and the policy hears of it.
// While work runs the coordinator also ticks, so late shards can be noticed.
// Invariant: a rank runs one placement at a time, and every job must finish —
// the simulator throws t2::Error if a policy double-books a rank or loses work.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bench/scheduler/cluster.h"
#include "bench/scheduler/workload.h"

namespace t2::scheduler::sim {

struct Start {
  PlacementId id = 0;
  RankId rank = 0;
  JobId job = 0;
  std::span<const std::uint32_t> prompts;  // valid until the next policy call
};

struct Outcome {
  bool wanted = true;                  // false: a stale result the policy ignores
  bool job_finished = false;
  std::vector<PlacementId> aborted;    // placements to stop; their ranks are free
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string_view name() const = 0;
  virtual void add_rank(const SimRank& rank, double now) = 0;
  virtual void submit(const SimJob& job, double now) = 0;
  virtual void dispatch(double now, std::vector<Start>& starts) = 0;
  virtual Outcome finish(PlacementId id, const Measurement& measured, double now) = 0;
  virtual double mape() const { return -1; }  // the cost model's, where there is one
  virtual void tally(struct RunResult&) const {}  // policy-specific counts
};

struct RunResult {
  std::string policy;
  double makespan = 0;      // last job's end, from the first arrival
  double mean_latency = 0;  // per job: end - arrival
  double p99_latency = 0;
  std::size_t placements = 0;
  std::size_t aborted = 0;
  double policy_seconds = 0;  // wall time spent inside the policy's calls
  double mape = -1;
  std::size_t stolen = 0, reissued = 0;  // t2's work steals and straggler backups
};

struct SimOptions {
  double tick_seconds = 2.0;  // the coordinator dispatches at least this often
};

RunResult simulate(const Workload& workload, const Cluster& cluster, const Hardware& hw,
                   Policy& policy, std::uint64_t seed, const SimOptions& options = {});

}  // namespace t2::scheduler::sim
