// The scheduler benchmark: scenarios, tables and the summary line.
#include "bench/scheduler/report.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <queue>
#include <random>
#include <unordered_map>
#include <vector>

#include "bench/scheduler/baselines.h"
#include "bench/scheduler/planner_policy.h"
#include "scheduler/longest_first.h"

namespace t2::scheduler::sim {
namespace {

struct Row {
  std::size_t ranks = 0, jobs = 0;
  RunResult rr, fifo, t2;
};

Row run_row(std::size_t ranks, bool heterogeneous, double jobs_per_rank, std::uint64_t seed) {
  const Hardware hw;
  const Cluster cluster = make_cluster(ranks, heterogeneous, seed);
  MixOptions mix;
  mix.jobs = std::max<std::size_t>(200, std::size_t(jobs_per_rank * double(ranks)));
  mix.seed = seed + 17;
  mix.burst_size = std::max(8.0, double(ranks) / 2);  // a burst's work grows with the cluster
  const Workload w = make_mix(mix, cluster, hw);

  Row row{ranks, mix.jobs, {}, {}, {}};
  RoundRobin rr(16);
  Fifo fifo(16);
  PlannerPolicy t2;
  row.rr = simulate(w, cluster, hw, rr, seed + 1);
  row.fifo = simulate(w, cluster, hw, fifo, seed + 1);
  row.t2 = simulate(w, cluster, hw, t2, seed + 1);
  return row;
}

void print_header(std::FILE* out, const char* title) {
  std::fprintf(out, "\n%s\n", title);
  std::fprintf(out,
               "%6s %6s | %9s %9s %9s | %8s %8s %8s | %8s %8s %8s | %7s %7s %7s | %5s %11s\n",
               "ranks", "jobs", "mk rr", "mk fifo", "mk t2", "mean rr", "mean ff", "mean t2",
               "p99 rr", "p99 ff", "p99 t2", "mk rr/", "mean ff/", "p99 ff/", "MAPE",
               "steal/backup");
}

void print_row(std::FILE* out, const Row& r) {
  std::fprintf(out,
               "%6zu %6zu | %9.0f %9.0f %9.0f | %8.0f %8.0f %8.0f | %8.0f %8.0f %8.0f | "
               "%6.2fx %6.2fx %6.2fx | %4.0f%% %5zu/%-5zu\n",
               r.ranks, r.jobs, r.rr.makespan, r.fifo.makespan, r.t2.makespan,
               r.rr.mean_latency, r.fifo.mean_latency, r.t2.mean_latency, r.rr.p99_latency,
               r.fifo.p99_latency, r.t2.p99_latency, r.rr.makespan / r.t2.makespan,
               r.fifo.mean_latency / r.t2.mean_latency, r.fifo.p99_latency / r.t2.p99_latency,
               100 * r.t2.mape, r.t2.stolen, r.t2.reissued);
  std::fflush(out);
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// The planner alone on 64 jobs of 25,000 prompts (~100,000 shards) over 1,024
// ranks, driven by a minimal event loop: every submit, dispatch and finish call,
// with shards taking their estimate times the rank's true slowness, so the cost
// model learns as it would. Thread CPU time, so other load on the machine does
// not count; wall time is printed beside it.
double time_planning(std::FILE* out, std::uint64_t seed) {
  const Hardware hw;
  const Cluster cluster = make_cluster(1024, true, seed);
  MixOptions mix;
  mix.jobs = 64;
  mix.seed = seed;
  Workload w = make_mix(mix, cluster, hw);
  std::unordered_map<RankId, double> slowness;
  for (const SimRank& r : cluster.ranks) slowness[r.id] = r.nominal_speed / r.true_speed;

  const double cpu0 = thread_cpu_seconds();
  const auto wall0 = std::chrono::steady_clock::now();
  CostModel model;
  Planner planner(model);
  for (const SimRank& r : cluster.ranks) planner.add_rank(r.id, r.nominal_speed, 0);
  for (SimJob& job : w.jobs) {
    job.job.prompt_tokens.resize(25000, 200);
    planner.submit(job.job, 0);
  }
  using Event = std::pair<double, std::pair<PlacementId, double>>;  // (end, (id, seconds))
  std::priority_queue<Event, std::vector<Event>, std::greater<>> ends;
  std::size_t placements = 0;
  double now = 0;
  while (true) {
    for (const Placement& p : planner.dispatch(now)) {
      const double seconds = p.estimated_seconds * slowness.at(p.rank);
      ends.push({now + seconds, {p.id, seconds}});
      ++placements;
    }
    if (ends.empty()) break;
    const auto [end, what] = ends.top();
    ends.pop();
    now = end;
    planner.finish({what.first, {what.second, 100ull * 16, 1.0}}, now);
  }
  const double cpu = thread_cpu_seconds() - cpu0;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();

  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> cost(2.0, 1.0);
  std::vector<double> seconds(100000);
  for (double& s : seconds) s = cost(rng);
  std::vector<PlanRank> ranks;
  for (const SimRank& r : cluster.ranks) ranks.push_back({r.id, r.nominal_speed, 0});
  const auto t0 = std::chrono::steady_clock::now();
  const auto plan = plan_longest_first(seconds, ranks);
  const double static_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::fprintf(out, "\nplanning on 1024 ranks: the online planner placed %zu shards of 64 "
               "jobs (every submit, dispatch and finish) in %.3f s of CPU (%.3f s wall on "
               "this machine); the static longest-first plan of %zu shards took %.3f s\n",
               placements, cpu, wall, plan.size(), static_seconds);
  return cpu * 100000.0 / double(std::max<std::size_t>(placements, 1));
}

}  // namespace

BenchSummary run_bench(const BenchOptions& options, std::FILE* out) {
  const std::vector<std::size_t> counts =
      options.quick ? std::vector<std::size_t>{4, 64, 1024}
                    : std::vector<std::size_t>{4, 16, 64, 256, 1024};
  const double jobs_per_rank = options.quick ? 2 : 6;

  std::fprintf(out, "scheduler simulator: %zu tasks, prompts and outputs lognormal per task, "
               "job sizes 1-6000 prompts (60%% small, 10%% huge), "
               "bursts of ~max(8, ranks/2) jobs, "
               "offered load 0.85; ratios are peer / t2 (higher is better for t2)\n", 24ul);

  BenchSummary summary{1e9, 1e9, 0};
  print_header(out, "skewed mix, heterogeneous ranks (nominal speeds 0.5 / 1 / 2):");
  for (std::size_t ranks : counts) {
    const Row row = run_row(ranks, true, jobs_per_rank, options.seed);
    print_row(out, row);
    summary.makespan_vs_round_robin =
        std::min(summary.makespan_vs_round_robin, row.rr.makespan / row.t2.makespan);
    summary.mean_latency_vs_fifo =
        std::min(summary.mean_latency_vs_fifo, row.fifo.mean_latency / row.t2.mean_latency);
  }
  print_header(out, "skewed mix, homogeneous ranks (for reference):");
  for (std::size_t ranks : counts)
    print_row(out, run_row(ranks, false, jobs_per_rank, options.seed));

  summary.plan_seconds_100k_on_1024 = time_planning(out, options.seed);
  std::fprintf(out, "makespan_vs_round_robin=%.2f mean_latency_vs_fifo=%.2f "
               "plan_seconds_100k_on_1024=%.3f\n",
               summary.makespan_vs_round_robin, summary.mean_latency_vs_fifo,
               summary.plan_seconds_100k_on_1024);
  return summary;
}

}  // namespace t2::scheduler::sim
