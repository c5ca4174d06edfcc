// MLflow's tracking-store layout on SQLite (tables and keys as MLflow 2.x
// migrations create them, plus an index on runs.start_time MLflow lacks, so
// the comparison is not won by a missing index). Same durability as t2's
// store: WAL, synchronous=FULL, 4096 decisions per transaction.
#include "mlflow_layout.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <stdexcept>

#include "store/sha256.h"

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

void check(int rc, sqlite3* db) {
  if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) {
    throw std::runtime_error(std::string("mlflow layout: ") + sqlite3_errmsg(db));
  }
}

struct Stmt {
  sqlite3* db;
  sqlite3_stmt* s = nullptr;
  Stmt(sqlite3* d, const std::string& sql) : db(d) {
    check(sqlite3_prepare_v2(d, sql.c_str(), -1, &s, nullptr), d);
  }
  ~Stmt() { sqlite3_finalize(s); }
  Stmt& text(int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& integer(int i, int64_t v) {
    sqlite3_bind_int64(s, i, v);
    return *this;
  }
  Stmt& real(int i, double v) {
    sqlite3_bind_double(s, i, v);
    return *this;
  }
  bool step() {
    int rc = sqlite3_step(s);
    check(rc, db);
    return rc == SQLITE_ROW;
  }
  void run() {
    while (step()) {
    }
    sqlite3_reset(s);
  }
  void reset() {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
};

void exec(sqlite3* db, const std::string& sql) { Stmt(db, sql).run(); }

const char* kSchema[] = {
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA cache_size = -65536",
    R"(CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name VARCHAR(256) UNIQUE,
         artifact_location VARCHAR(256), lifecycle_stage VARCHAR(32)))",
    R"(CREATE TABLE runs (run_uuid VARCHAR(32) PRIMARY KEY, name VARCHAR(250),
         source_type VARCHAR(20), source_name VARCHAR(500), entry_point_name VARCHAR(50),
         user_id VARCHAR(256), status VARCHAR(9), start_time BIGINT, end_time BIGINT,
         source_version VARCHAR(50), lifecycle_stage VARCHAR(20), artifact_uri VARCHAR(200),
         experiment_id INTEGER REFERENCES experiments(experiment_id), deleted_time BIGINT))",
    R"(CREATE TABLE tags (key VARCHAR(250), value VARCHAR(5000),
         run_uuid VARCHAR(32) REFERENCES runs(run_uuid), PRIMARY KEY (key, run_uuid)))",
    R"(CREATE TABLE params (key VARCHAR(250), value VARCHAR(8000),
         run_uuid VARCHAR(32) REFERENCES runs(run_uuid), PRIMARY KEY (key, run_uuid)))",
    R"(CREATE TABLE metrics (key VARCHAR(250), value FLOAT, timestamp BIGINT,
         run_uuid VARCHAR(32) REFERENCES runs(run_uuid), step BIGINT DEFAULT 0,
         is_nan BOOLEAN DEFAULT 0,
         PRIMARY KEY (key, timestamp, step, run_uuid, value, is_nan)))",
    R"(CREATE TABLE latest_metrics (key VARCHAR(250), value FLOAT, timestamp BIGINT,
         step BIGINT, is_nan BOOLEAN, run_uuid VARCHAR(32) REFERENCES runs(run_uuid),
         PRIMARY KEY (key, run_uuid)))",
    "CREATE INDEX index_tags_run_uuid ON tags(run_uuid)",
    "CREATE INDEX index_params_run_uuid ON params(run_uuid)",
    "CREATE INDEX index_metrics_run_uuid ON metrics(run_uuid)",
    "CREATE INDEX index_latest_metrics_run_uuid ON latest_metrics(run_uuid)",
    "CREATE INDEX index_runs_start_time ON runs(experiment_id, start_time)",  // generous
    "INSERT INTO experiments VALUES (1, 'decisions', '', 'active')",
};

std::string run_uuid(int64_t i) {
  auto h = t2::store::sha256(std::string_view(fmt::format("run-{}", i)));
  return t2::store::to_hex(std::span(h.data(), 16));
}

}  // namespace

PeerFigures run_mlflow_layout(const std::string& path, const Workload& work,
                              const std::vector<Query>& queries) {
  for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(path + s);
  sqlite3* db = nullptr;
  check(sqlite3_open(path.c_str(), &db), db);
  for (const char* sql : kSchema) exec(db, sql);
  PeerFigures out;

  // --- insert: one run per decision, its fields as tags, params and metrics ---
  {
    Stmt run(db, "INSERT INTO runs (run_uuid, name, source_type, source_name, "
                 "entry_point_name, user_id, status, start_time, end_time, source_version, "
                 "lifecycle_stage, artifact_uri, experiment_id) VALUES (?, ?, 'LOCAL', '', '', "
                 "'t2', 'FINISHED', ?, ?, '', 'active', '', 1)");
    Stmt tag(db, "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)");
    Stmt param(db, "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)");
    Stmt metric(db, "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                    " VALUES (?, ?, ?, ?, 0, 0)");
    Stmt latest(db, "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan,"
                    " run_uuid) VALUES (?, ?, ?, 0, 0, ?)");
    auto t = Clock::now();
    for (size_t i = 0; i < work.rows.size(); ++i) {
      if (i % 4096 == 0) exec(db, "BEGIN");
      const Row& r = work.rows[i];
      std::string id = run_uuid(static_cast<int64_t>(i));
      int64_t ms = r.time_us / 1000;
      run.text(1, id).text(2, fmt::format("req-{}", i)).integer(3, ms).integer(4, ms).run();
      auto add = [&](Stmt& s, const std::string& k, const std::string& v) {
        s.text(1, k).text(2, v).text(3, id).run();
      };
      add(tag, "task", kTasks[r.task]);
      add(tag, "strategy", kStrategies[r.strategy]);
      if (r.job >= 0) add(tag, "job", std::to_string(r.job));
      add(tag, "kind", r.placement ? "placement" : "request");
      for (int e = 0; e < r.expert_count; ++e) {
        add(tag, fmt::format("expert.{}", kExperts[r.experts[e]]),
            fmt::format("{}", r.weights[e]));
      }
      std::string prompt = work.prompt(static_cast<int64_t>(i));
      add(param, "depth", std::to_string(r.depth));
      add(param, "rank", std::to_string(r.rank));
      add(param, "prompt_sha256", t2::store::to_hex(t2::store::sha256(std::string_view(prompt))));
      add(param, "prompt_excerpt", prompt.substr(0, 256));
      add(param, "first_pass",
          fmt::format(R"({{"label":"{}","p":{}}})", kTasks[r.task], r.confidence));
      const std::pair<const char*, double> values[] = {{"estimated_cost", r.estimated_cost},
                                                       {"measured_cost", r.measured_cost},
                                                       {"first_pass_ms", r.first_pass_ms},
                                                       {"second_pass_ms", r.second_pass_ms}};
      for (const auto& [key, value] : values) {
        metric.text(1, key).real(2, value).integer(3, ms).text(4, id).run();
        latest.text(1, key).real(2, value).integer(3, ms).text(4, id).run();
      }
      if (i % 4096 == 4095 || i + 1 == work.rows.size()) exec(db, "COMMIT");
    }
    out.insert_s = ms_since(t) / 1e3;
  }

  // --- queries: a join per tag filter, newest 100 runs, then their data -------
  std::vector<double> ms;
  for (const Query& q : queries) {
    std::string sql = "SELECT r.run_uuid FROM runs r";
    std::vector<std::string> values;
    auto join_tag = [&](const std::string& key, const std::string& value, bool any_value) {
      std::string alias = fmt::format("t{}", values.size());
      sql += fmt::format(" JOIN tags {0} ON {0}.run_uuid = r.run_uuid AND {0}.key = '{1}'", alias,
                         key);
      if (!any_value) {
        sql += " AND " + alias + ".value = ?";
        values.push_back(value);
      }
    };
    if (q.task >= 0) join_tag("task", kTasks[q.task], false);
    if (q.strategy >= 0) join_tag("strategy", kStrategies[q.strategy], false);
    if (q.job >= 0) join_tag("job", std::to_string(q.job), false);
    if (q.expert >= 0) join_tag(fmt::format("expert.{}", kExperts[q.expert]), "", true);
    sql += " WHERE r.experiment_id = 1 AND r.lifecycle_stage = 'active'";
    if (q.since_us) sql += " AND r.start_time >= " + std::to_string(q.since_us / 1000);
    if (q.until_us) sql += " AND r.start_time < " + std::to_string(q.until_us / 1000);
    sql += " ORDER BY r.start_time DESC, r.run_uuid LIMIT 100";

    auto t = Clock::now();
    Stmt find(db, sql);
    for (size_t i = 0; i < values.size(); ++i) find.text(static_cast<int>(i) + 1, values[i]);
    std::vector<std::string> ids;
    while (find.step()) {
      ids.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(find.s, 0)));
    }
    // search_runs returns each run with its tags, params and latest metrics.
    for (const char* table : {"tags", "params", "latest_metrics"}) {
      Stmt load(db, std::string("SELECT key, value FROM ") + table + " WHERE run_uuid = ?");
      for (const auto& id : ids) {
        load.text(1, id);
        while (load.step()) {
        }
        load.reset();
      }
    }
    ms.push_back(ms_since(t));
    out.returned += static_cast<int64_t>(ids.size());
  }
  std::sort(ms.begin(), ms.end());
  out.query_p50_ms = ms[ms.size() / 2];
  out.query_p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  out.query_max_ms = ms.back();

  {
    auto t = Clock::now();
    Stmt agg(db, "SELECT s.value, count(*), avg(m.value) FROM tags s LEFT JOIN latest_metrics m"
                 " ON m.run_uuid = s.run_uuid AND m.key = 'first_pass_ms'"
                 " WHERE s.key = 'strategy' GROUP BY s.value");
    while (agg.step()) {
    }
    out.agg_strategy_ms = ms_since(t);
  }

  sqlite3_close(db);
  for (const char* s : {"", "-wal"}) {
    std::error_code ec;
    auto size = std::filesystem::file_size(path + s, ec);
    if (!ec) out.bytes += static_cast<double>(size);
  }
  for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(path + s);
  return out;
}

}  // namespace bench
