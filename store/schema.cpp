// Schema of t2's store and its migrations, applied in order inside one write
// transaction so a crash mid-migration leaves the previous version intact.
// Times are INTEGER microseconds (UTC); JSON is TEXT; hashes are raw BLOBs.
#include "store/schema.h"

#include <filesystem>
#include <vector>

#include "t2/error.h"
#include "t2/log.h"

namespace t2::store::schema {
namespace {

struct Migration {
  int version;
  std::vector<const char*> statements;
};

// Append new versions at the end; never edit a released one.
const std::vector<Migration>& migrations() {
  static const std::vector<Migration> kMigrations = {
      {1,
       {
           R"(CREATE TABLE jobs (
                id INTEGER PRIMARY KEY,
                submission_id TEXT UNIQUE,
                type TEXT NOT NULL
                  CHECK (type IN ('train', 'evaluate', 'generate', 'fewshot')),
                spec TEXT NOT NULL CHECK (json_valid(spec)),
                state TEXT NOT NULL
                  CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
                priority INTEGER NOT NULL DEFAULT 0,
                created_us INTEGER NOT NULL,
                updated_us INTEGER NOT NULL,
                started_us INTEGER,
                finished_us INTEGER,
                error TEXT,
                attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0)))",
           "CREATE INDEX jobs_state ON jobs(state, priority DESC, id)",

           R"(CREATE TABLE job_events (
                job_id INTEGER NOT NULL REFERENCES jobs(id),
                seq INTEGER NOT NULL CHECK (seq > 0),
                time_us INTEGER NOT NULL,
                kind TEXT NOT NULL,
                payload TEXT NOT NULL CHECK (json_valid(payload)),
                PRIMARY KEY (job_id, seq)) WITHOUT ROWID)",

           R"(CREATE TABLE experts (
                name TEXT PRIMARY KEY,
                task TEXT NOT NULL,
                base_model_hash TEXT NOT NULL,
                matrix_set TEXT NOT NULL,
                vector BLOB,
                file_path TEXT,
                checksum TEXT,
                validation_accuracy REAL,
                source_job INTEGER REFERENCES jobs(id),
                created_us INTEGER NOT NULL,
                CHECK ((vector IS NULL) <> (file_path IS NULL)),
                CHECK (file_path IS NULL OR checksum IS NOT NULL)))",
           "CREATE INDEX experts_task ON experts(task)",

           R"(CREATE TABLE checkpoints (
                job_id INTEGER NOT NULL REFERENCES jobs(id),
                step INTEGER NOT NULL,
                parameters BLOB NOT NULL,
                optimizer BLOB NOT NULL,
                created_us INTEGER NOT NULL,
                PRIMARY KEY (job_id, step)))",

           // Small, filtered columns first; wide text last so scans stay short.
           // LIMITATION: decisions and metrics are never deleted, so the file
           // grows by about 0.65 GB per million decisions; a retention job
           // (delete by age in small batches, then incremental vacuum) would
           // bound it.
           // job_id has no FOREIGN KEY: an immediate one makes every insert open
           // a statement journal. Store checks it against the ids it issued
           // (jobs are never deleted and their ids are contiguous).
           R"(CREATE TABLE decisions (
                id INTEGER PRIMARY KEY,
                time_us INTEGER NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('request', 'placement')),
                job_id INTEGER,
                task TEXT,
                strategy TEXT NOT NULL,
                rank INTEGER,
                depth INTEGER,
                estimated_cost REAL,
                measured_cost REAL,
                first_pass_ms REAL,
                second_pass_ms REAL,
                request_id TEXT,
                prompt_sha256 BLOB NOT NULL CHECK (length(prompt_sha256) = 32),
                experts TEXT NOT NULL,
                first_pass TEXT,
                prompt_excerpt TEXT))",
           "CREATE INDEX decisions_time ON decisions(time_us)",
           "CREATE INDEX decisions_job ON decisions(job_id, time_us) WHERE job_id IS NOT NULL",
           "CREATE INDEX decisions_task ON decisions(task, time_us)",
           "CREATE INDEX decisions_strategy ON decisions(strategy, time_us)",
           "CREATE INDEX decisions_rank ON decisions(rank, time_us) WHERE rank IS NOT NULL",

           // The chosen experts of a decision, one row each, written in the
           // decision's savepoint; keyed for the expert filter and per-expert
           // counts. decisions.experts holds the same list for reading rows.
           R"(CREATE TABLE decision_experts (
                expert TEXT NOT NULL,
                decision_id INTEGER NOT NULL,
                weight REAL NOT NULL,
                PRIMARY KEY (expert, decision_id)) WITHOUT ROWID)",

           R"(CREATE TABLE metrics (
                job_id INTEGER NOT NULL REFERENCES jobs(id),
                key TEXT NOT NULL,
                step INTEGER NOT NULL,
                value REAL,
                time_us INTEGER NOT NULL))",
           "CREATE INDEX metrics_job_key ON metrics(job_id, key, step)",
       }},
      {2,
       {
           // Named state of the service's own parts (the scheduler's cost
           // model), one JSON document per key, replaced whole on save.
           R"(CREATE TABLE service_state (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL CHECK (json_valid(value)),
                updated_us INTEGER NOT NULL))",
       }},
  };
  return kMigrations;
}

[[noreturn]] void unreadable(const std::string& path, const std::exception& e) {
  fail("store: '{}' is corrupt or not a SQLite database ({}); it was not modified. "
       "Restore it from a backup or move it aside to start with an empty store",
       path, e.what());
}

}  // namespace

bool has_rollback_journal(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path + "-journal", ec);
  return !ec && size > 0;
}

void check_before_open(const std::string& path, OpenCheck check, int busy_timeout_ms) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) || std::filesystem::file_size(path, ec) == 0) return;

  // A writer killed while creating the file (before it reached WAL mode) can
  // leave a hot rollback journal, which a read-only connection cannot replay.
  // Reading on a read-write connection runs SQLite's own crash recovery: it
  // restores the last committed state and changes nothing else.
  if (has_rollback_journal(path)) {
    sql::Db recover(path, sql::Db::Mode::read_write, busy_timeout_ms);
    try {
      recover.query_int("PRAGMA user_version");
    } catch (const Error& e) {
      unreadable(path, e);
    }
    log::get("store")->warn("'{}': rolled back a transaction interrupted by a crash", path);
  }

  // Read-only: nothing done here can change the file, even on a newer schema.
  sql::Db db(path, sql::Db::Mode::read_only, busy_timeout_ms);
  int64_t version = 0, app_id = 0, tables = 0;
  try {
    version = db.query_int("PRAGMA user_version");
    app_id = db.query_int("PRAGMA application_id");
    tables = db.query_int("SELECT count(*) FROM sqlite_schema");
  } catch (const Error& e) {
    unreadable(path, e);
  }

  if (app_id != 0 && app_id != kApplicationId) {
    fail("store: '{}' belongs to another application (application_id {:#x}); it was not "
         "modified. Point --db at a t2 database or a new path",
         path, app_id);
  }
  if (version == 0 && tables > 0) {
    fail("store: '{}' holds {} tables but no t2 schema version; it was not modified. "
         "Point --db at a t2 database or a new path",
         path, tables);
  }
  if (version > kVersion) {
    fail("store: '{}' has schema version {}, newer than this build's {}; it was not "
         "modified. Run a newer t2, or restore a backup made by this version",
         path, version, kVersion);
  }

  // LIMITATION: quick_check reads the whole file at every start (about a second
  // per GB); a clean-shutdown marker could let a cleanly closed file skip it.
  if (check == OpenCheck::none) return;
  std::string result;
  try {
    result = check == OpenCheck::full ? integrity_check(db)
                                    : db.query_text("PRAGMA quick_check(10)").value_or("");
  } catch (const Error& e) {
    unreadable(path, e);
  }
  if (result != "ok") {
    fail("store: '{}' is corrupt: it failed its integrity check ({}); it was not modified. "
         "Restore it from a backup or move it aside to start with an empty store",
         path, result);
  }
}

void configure_writer(sql::Db& db, bool fsync_each_commit, int cache_mib) {
  // 8 KiB pages: fewer WAL frames and write calls per commit than 4 KiB, for
  // the same rows. Takes effect only on a new file (before WAL is set).
  db.exec("PRAGMA page_size = 8192");
  auto mode = db.query_text("PRAGMA journal_mode = WAL");
  if (mode != "wal") {
    fail("store: '{}' could not switch to WAL mode (got '{}'); the store needs a local "
         "file system that supports shared memory",
         db.path(), mode.value_or("?"));
  }
  // FULL: every commit is fsynced, so a returned commit survives power loss.
  // NORMAL: a returned commit survives a process crash, not a power cut.
  db.exec(fsync_each_commit ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
  db.exec("PRAGMA foreign_keys = ON");
  db.exec("PRAGMA cache_size = -" + std::to_string(cache_mib * 1024));
  db.exec("PRAGMA temp_store = MEMORY");
}

void configure_reader(sql::Db& db) {
  db.exec("PRAGMA foreign_keys = ON");
  db.exec("PRAGMA query_only = ON");
  db.exec("PRAGMA cache_size = -16384");
  db.exec("PRAGMA mmap_size = 1073741824");  // reads from the page cache, no copy
  db.exec("PRAGMA temp_store = MEMORY");
}

int migrate(sql::Db& db) {
  db.exec("BEGIN IMMEDIATE");
  try {
    int found = static_cast<int>(db.query_int("PRAGMA user_version"));
    for (const Migration& m : migrations()) {
      if (m.version <= found) continue;
      for (const char* statement : m.statements) db.exec(statement);
    }
    if (found < kVersion) {
      // PRAGMA takes no bound parameters; both values are our own constants.
      db.exec("PRAGMA application_id = " + std::to_string(kApplicationId));
      db.exec("PRAGMA user_version = " + std::to_string(kVersion));
    }
    db.exec("COMMIT");
    if (found < kVersion) {
      log::get("store")->info("migrated '{}' from schema version {} to {}", db.path(), found,
                              kVersion);
    }
    return found;
  } catch (...) {
    db.rollback_quietly();
    throw;
  }
}

void expect_readable(const std::string& path) {
  if (has_rollback_journal(path)) {
    fail("store: '{}' was interrupted while it was being created (a rollback journal is "
         "present); open it once with the service to recover it",
         path);
  }
}

void expect_current(sql::Db& db, const std::string& path) {
  int64_t version = 0, app_id = 0;
  try {
    version = db.query_int("PRAGMA user_version");
    app_id = db.query_int("PRAGMA application_id");
  } catch (const Error& e) {
    unreadable(path, e);
  }
  if (app_id != kApplicationId) {
    fail("store: '{}' is not a t2 database (application_id {:#x}); check the --db path", path,
         app_id);
  }
  if (version > kVersion) {
    fail("store: '{}' has schema version {}, newer than this build's {}; run a newer t2",
         path, version, kVersion);
  }
  if (version < kVersion) {
    fail("store: '{}' has schema version {}, older than this build's {}; start the service "
         "on it once to migrate it",
         path, version, kVersion);
  }
}

std::string integrity_check(sql::Db& db) {
  sql::Stmt& stmt = db.prepare("PRAGMA integrity_check(20)");
  sql::ResetGuard guard(stmt);
  std::string out;
  while (stmt.step()) {
    if (!out.empty()) out += "; ";
    out += stmt.text(0);
  }
  return out;
}

}  // namespace t2::store::schema
