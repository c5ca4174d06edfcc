// The discrete-event loop. Events at one instant are all applied before the
// policy is asked to dispatch, as the coordinator batches what it receives.
#include "bench/scheduler/simulator.h"

#include <algorithm>
#include <chrono>
#include <queue>
#include <random>
#include <unordered_map>

#include "t2/error.h"

namespace t2::scheduler::sim {
namespace {

struct Running {
  JobId job;
  RankId rank;
  Measurement measured;
};

using Clock = std::chrono::steady_clock;

class Stopwatch {
 public:
  explicit Stopwatch(double& total) : total_(total), start_(Clock::now()) {}
  ~Stopwatch() { total_ += std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  double& total_;
  Clock::time_point start_;
};

}  // namespace

RunResult simulate(const Workload& workload, const Cluster& cluster, const Hardware& hw,
                   Policy& policy, std::uint64_t seed, const SimOptions& options) {
  std::mt19937_64 rng(seed);
  RunResult result;
  result.policy = std::string(policy.name());

  std::unordered_map<RankId, const SimRank*> ranks;
  std::unordered_map<RankId, PlacementId> busy;
  for (const SimRank& r : cluster.ranks) {
    ranks[r.id] = &r;
    Stopwatch watch(result.policy_seconds);
    policy.add_rank(r, 0.0);
  }

  using Event = std::pair<double, PlacementId>;  // finish time, placement
  std::priority_queue<Event, std::vector<Event>, std::greater<>> finishes;
  std::unordered_map<PlacementId, Running> running;
  std::vector<double> end(workload.jobs.size() + 1, -1);
  std::vector<Start> starts;
  std::size_t next_arrival = 0, finished_jobs = 0;
  double last = 0;

  auto stop = [&](PlacementId id) {
    auto it = running.find(id);
    if (it == running.end()) return;
    busy.erase(it->second.rank);
    running.erase(it);
  };

  while (next_arrival < workload.jobs.size() || !finishes.empty()) {
    double now = finishes.empty() ? workload.jobs[next_arrival].arrival : finishes.top().first;
    if (next_arrival < workload.jobs.size())
      now = std::min(now, workload.jobs[next_arrival].arrival);
    if (!running.empty()) now = std::min(now, last + options.tick_seconds);
    last = now;

    // 1. Everything that happens at `now`: finishes first, then arrivals.
    while (!finishes.empty() && finishes.top().first <= now) {
      const PlacementId id = finishes.top().second;
      finishes.pop();
      auto it = running.find(id);
      if (it == running.end()) continue;  // aborted earlier
      const Running run = it->second;
      stop(id);
      Outcome outcome;
      {
        Stopwatch watch(result.policy_seconds);
        outcome = policy.finish(id, run.measured, now);
      }
      for (PlacementId other : outcome.aborted) stop(other);
      result.aborted += outcome.aborted.size();
      if (outcome.job_finished) {
        end[run.job] = now;
        ++finished_jobs;
      }
    }
    while (next_arrival < workload.jobs.size() && workload.jobs[next_arrival].arrival <= now) {
      Stopwatch watch(result.policy_seconds);
      policy.submit(workload.jobs[next_arrival++], now);
    }

    // 2. What the policy starts now, and when each will really finish.
    starts.clear();
    {
      Stopwatch watch(result.policy_seconds);
      policy.dispatch(now, starts);
    }
    for (const Start& s : starts) {
      if (busy.count(s.rank))
        fail("policy {} started placement {} on busy rank {}", policy.name(), s.id, s.rank);
      const SimJob& job = workload.jobs[s.job - 1];
      const Batch batch = batch_of(job, s.prompts.data(), s.prompts.size());
      const double seconds = true_seconds(hw, batch, *ranks.at(s.rank), rng);
      running[s.id] = {s.job, s.rank, {seconds, batch.output_tokens, batch.depth}};
      busy[s.rank] = s.id;
      finishes.push({now + seconds, s.id});
      ++result.placements;
    }
  }

  if (finished_jobs != workload.jobs.size())
    fail("policy {} finished {} of {} jobs", policy.name(), finished_jobs, workload.jobs.size());

  std::vector<double> latency;
  for (const SimJob& job : workload.jobs) {
    latency.push_back(end[job.job.id] - job.arrival);
    result.makespan = std::max(result.makespan, end[job.job.id]);
  }
  double sum = 0;
  for (double l : latency) sum += l;
  result.mean_latency = sum / double(latency.size());
  std::sort(latency.begin(), latency.end());
  result.p99_latency = latency[std::min(latency.size() - 1, latency.size() * 99 / 100)];
  result.mape = policy.mape();
  policy.tally(result);
  return result;
}

}  // namespace t2::scheduler::sim
