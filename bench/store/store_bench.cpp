// Store benchmark: N decisions written through Store::record_decision (queued,
// batched by the writer thread, fsync per commit), then filtered limit-100
// queries (p50/p99), whole-table aggregates and the file size per million rows.
// The same rows and the same queries then run on MLflow's tracking-store layout
// (runs + tags + metrics tables) so its figures come from the same machine and run.
// Goals are absolute: >= 50,000 rows/s, query p99 < 20 ms.
#include <fmt/format.h>
#include <sys/resource.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mlflow_layout.h"
#include "store/store.h"

namespace {

using namespace t2::store;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU seconds of this process, all threads: a figure the machine's load does not skew.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU seconds of the calling thread: a query's own work, without preemption.
double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five;
  in >> one >> five;
  return one + " " + five;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

uint64_t dir_bytes(const std::string& path) {
  uint64_t total = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    auto size = std::filesystem::file_size(path + suffix, ec);
    if (!ec) total += size;
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 1'000'000;
  int queries = 400;
  bool peer = true;
  bool insert_only = false;
  bool keep = false;  // leave the t2 database for inspection
  int64_t peer_rows = 200'000;
  Options options;  // the defaults: fsync per commit
  std::string dir = std::filesystem::temp_directory_path().string();
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--rows") && i + 1 < argc) rows = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--queries") && i + 1 < argc) queries = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
    else if (!std::strcmp(argv[i], "--no-peer")) peer = false;
    else if (!std::strcmp(argv[i], "--insert-only")) insert_only = true;
    else if (!std::strcmp(argv[i], "--keep")) keep = true;
    else if (!std::strcmp(argv[i], "--no-fsync")) options.fsync_each_commit = false;
    else if (!std::strcmp(argv[i], "--cache-mib") && i + 1 < argc)
      options.writer_cache_mib = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--peer-rows") && i + 1 < argc)
      peer_rows = std::atoll(argv[++i]);
    else {
      fmt::print(stderr, "usage: store_bench [--rows N] [--queries N] [--dir D] [--no-peer] "
                         "[--peer-rows N] [--insert-only] [--keep] [--no-fsync] "
                         "[--cache-mib N]\n");
      return 2;
    }
  }
  bench::Workload work = bench::make_workload(rows, 42);
  std::string path = dir + "/t2_store_bench.db";
  for (const char* s : {"", "-wal", "-shm", "-lock"}) std::filesystem::remove(path + s);

  fmt::print("store_bench: {} decisions, {} queries per shape, SQLite {}, {} cores, load "
             "average (1, 5 min) at start {}\n",
             rows, queries, sqlite3_libversion(), std::thread::hardware_concurrency(),
             load_average());
  fmt::print("{:<44} {:>14} {:>14} {:>8}\n", "figure", "t2 store", "mlflow layout", "ratio");

  // --- insert ---------------------------------------------------------------
  auto store = Store::open(path, options);
  std::vector<JobId> jobs;
  for (int j = 0; j < bench::kJobs; ++j) {
    jobs.push_back(store->submit_job({JobType::generate, {{"j", j}}, 0, std::nullopt}).job.id);
  }
  auto start = Clock::now();
  double cpu_start = cpu_seconds();
  for (int64_t i = 0; i < rows; ++i) {
    const bench::Row& r = work.rows[i];
    NewDecision d;
    d.time = from_us(r.time_us);
    d.kind = r.placement ? DecisionKind::placement : DecisionKind::request;
    if (r.job >= 0) d.job = jobs[r.job];
    d.request_id = fmt::format("req-{}", i);
    d.task = bench::kTasks[r.task];
    d.strategy = bench::kStrategies[r.strategy];
    d.first_pass = {{"label", bench::kTasks[r.task]}, {"p", r.confidence}};
    for (int e = 0; e < r.expert_count; ++e) {
      d.experts.push_back({bench::kExperts[r.experts[e]], r.weights[e]});
    }
    d.depth = r.depth;
    d.rank = r.rank;
    d.estimated_cost = r.estimated_cost;
    d.measured_cost = r.measured_cost;
    d.first_pass_ms = r.first_pass_ms;
    d.second_pass_ms = r.second_pass_ms;
    d.prompt = work.prompt(i);
    store->record_decision(d);
  }
  store->flush();
  double t2_insert = seconds_since(start);
  double t2_insert_cpu = cpu_seconds() - cpu_start;
  StoreStats stats = store->stats();
  if (insert_only) {
    fmt::print("insert: {:.0f} rows/s wall, {:.0f} rows per CPU-second, {:.0f} rows per "
               "writer-thread CPU-second\n",
               rows / t2_insert, rows / t2_insert_cpu, rows / stats.writer_cpu_seconds);
    return 0;
  }

  // --- queries ------------------------------------------------------------------
  std::vector<bench::Query> qs = bench::make_queries(work, queries, 7);
  std::vector<double> t2_ms, t2_cpu_ms;
  std::vector<std::vector<double>> t2_shape_ms(8);
  int64_t t2_returned = 0;
  for (size_t qi = 0; qi < qs.size(); ++qi) {
    const bench::Query& q = qs[qi];
    DecisionFilter f;
    if (q.task >= 0) f.task = bench::kTasks[q.task];
    if (q.strategy >= 0) f.strategy = bench::kStrategies[q.strategy];
    if (q.expert >= 0) f.expert = bench::kExperts[q.expert];
    if (q.job >= 0) f.job = jobs[q.job];
    if (q.since_us) f.since = from_us(q.since_us);
    if (q.until_us) f.until = from_us(q.until_us);
    auto t = Clock::now();
    double cpu = thread_cpu_seconds();
    DecisionPage page = store->query_decisions(f, {100, "", Order::newest_first});
    t2_ms.push_back(seconds_since(t) * 1e3);
    t2_cpu_ms.push_back((thread_cpu_seconds() - cpu) * 1e3);
    t2_shape_ms[qi % 8].push_back(t2_ms.back());
    t2_returned += static_cast<int64_t>(page.rows.size());
  }

  // Deep pagination: follow the cursor 100 pages into one task.
  DecisionFilter deep;
  deep.task = bench::kTasks[0];
  PageRequest page{100, "", Order::newest_first};
  std::vector<double> page_ms;
  for (int p = 0; p < 100; ++p) {
    auto t = Clock::now();
    DecisionPage got = store->query_decisions(deep, page);
    page_ms.push_back(seconds_since(t) * 1e3);
    page.cursor = got.next_cursor;
    if (page.cursor.empty()) break;
  }

  // --- aggregates --------------------------------------------------------------
  auto time_aggregate = [&](std::vector<GroupField> by) {
    auto t = Clock::now();
    Aggregate a = store->aggregate_decisions(by, {});
    (void)a;
    return seconds_since(t) * 1e3;
  };
  double agg_strategy = time_aggregate({GroupField::strategy});
  double agg_task_expert = time_aggregate({GroupField::task, GroupField::expert});
  double agg_day = time_aggregate({GroupField::day});

  std::string integrity = store->integrity_check();
  store.reset();  // checkpoints the WAL into the file
  double t2_bytes = static_cast<double>(dir_bytes(path));

  // --- MLflow tracking-store layout ----------------------------------------------
  // Its insert is ~10x slower, so by default it gets fewer rows over the same
  // 30 days. Its queries then search a smaller table: the ratios understate t2.
  bench::PeerFigures mlflow;
  if (peer_rows > rows) peer_rows = rows;
  if (peer) {
    bench::Workload peer_work = peer_rows == rows ? bench::Workload{} : bench::make_workload(
                                                                            peer_rows, 42);
    const bench::Workload& pw = peer_rows == rows ? work : peer_work;
    std::vector<bench::Query> peer_qs = bench::make_queries(pw, queries, 7);
    mlflow = bench::run_mlflow_layout(dir + "/t2_store_bench_mlflow.db", pw, peer_qs);
    if (peer_rows != rows) {
      fmt::print("mlflow layout measured at {} rows (--peer-rows); its per-row figures are "
                 "scaled, its query times are for the smaller table\n",
                 peer_rows);
    }
  }

  auto row = [&](const std::string& name, double ours, std::optional<double> theirs,
                 const char* unit, bool higher_is_better) {
    if (theirs && *theirs > 0 && ours > 0) {
      double ratio = higher_is_better ? ours / *theirs : *theirs / ours;
      fmt::print("{:<44} {:>11.1f} {:<2} {:>11.1f} {:<2} {:>7.1f}x\n", name, ours, unit, *theirs,
                 unit, ratio);
    } else {
      fmt::print("{:<44} {:>11.1f} {:<2} {:>14} {:>8}\n", name, ours, unit, "-", "-");
    }
  };
  std::optional<double> none;
  auto peer_or = [&](double v) { return peer ? std::optional<double>(v) : none; };
  row("insert, rows/s (batched, fsync per commit)", rows / t2_insert,
      peer_or(peer_rows / mlflow.insert_s), "/s", true);
  row("insert, rows per CPU-second (all threads)", rows / t2_insert_cpu, none, "/s", true);
  row("insert, rows per writer-thread CPU-second", rows / stats.writer_cpu_seconds, none, "/s",
      true);
  row("filtered query limit 100, p50", percentile(t2_ms, 0.50), peer_or(mlflow.query_p50_ms),
      "ms", false);
  row("filtered query limit 100, p99", percentile(t2_ms, 0.99), peer_or(mlflow.query_p99_ms),
      "ms", false);
  row("filtered query limit 100, max", percentile(t2_ms, 1.0), peer_or(mlflow.query_max_ms),
      "ms", false);
  row("filtered query limit 100, CPU time p99", percentile(t2_cpu_ms, 0.99), none, "ms", false);
  row("cursor page 1..100 of one task, p99", percentile(page_ms, 0.99), none, "ms", false);
  row("aggregate: count/means by strategy", agg_strategy, peer_or(mlflow.agg_strategy_ms), "ms",
      false);
  row("aggregate: expert share per task", agg_task_expert, none, "ms", false);
  row("aggregate: count/means by day", agg_day, none, "ms", false);
  row("database size per 1M rows", t2_bytes / rows * 1e6 / (1 << 20),
      peer_or(mlflow.bytes / peer_rows * 1e6 / (1 << 20)), "MB", false);

  const char* shapes[] = {"task",     "strategy, last day", "expert",       "job",
                          "task+strategy, last week", "task+expert", "one-hour window",
                          "strategy"};
  fmt::print("t2 query p50/p99 by shape:");
  for (int k = 0; k < 8; ++k) {
    fmt::print(" {} {:.1f}/{:.1f};", shapes[k], percentile(t2_shape_ms[k], 0.5),
               percentile(t2_shape_ms[k], 0.99));
  }
  fmt::print("\n");
  fmt::print("writer: {} transactions, largest batch {}, failed {}; rows returned {}; "
             "integrity_check: {}\n",
             stats.transactions, stats.largest_batch, stats.ops_failed, t2_returned, integrity);
  if (peer && peer_rows == rows && mlflow.returned != t2_returned) {
    fmt::print("WARNING: the layouts returned different row counts ({} vs {})\n", t2_returned,
               mlflow.returned);
  }
  fmt::print("load average at end: {}\n", load_average());
  bool ok = rows / t2_insert >= 50'000 && percentile(t2_ms, 0.99) < 20.0;
  fmt::print("goals (>= 50000 rows/s, p99 < 20 ms): {}\n", ok ? "met" : "NOT met");
  if (!keep) {
    for (const char* s : {"", "-wal", "-shm", "-lock"}) std::filesystem::remove(path + s);
  }
  return 0;
}
