// Jobs, their event log and their training checkpoints. A job's row and its
// state events change in one transaction, so the last "state" event always
// matches the job's state; submissions are idempotent by submission_id.
#include <algorithm>

#include "store/reader_pool.h"
#include "store/store.h"
#include "store/writer.h"
#include "t2/error.h"

namespace t2::store {
namespace {

constexpr const char* kJobColumns =
    "SELECT id, submission_id, type, spec, state, priority, created_us, updated_us,"
    " started_us, finished_us, error, attempts FROM jobs";

Job read_job(const sql::Stmt& s) {
  Job job;
  job.id = s.int64(0);
  job.submission_id = s.opt_text(1);
  job.type = job_type_from(s.text(2));
  job.spec = nlohmann::json::parse(s.text(3));
  job.state = job_state_from(s.text(4));
  job.priority = static_cast<int>(s.int64(5));
  job.created = from_us(s.int64(6));
  job.updated = from_us(s.int64(7));
  if (auto v = s.opt_int64(8)) job.started = from_us(*v);
  if (auto v = s.opt_int64(9)) job.finished = from_us(*v);
  job.error = s.opt_text(10).value_or("");
  job.attempts = static_cast<int>(s.int64(11));
  return job;
}

std::optional<Job> job_by_id(sql::Db& db, JobId id) {
  sql::Stmt& stmt = db.prepare(std::string(kJobColumns) + " WHERE id = ?");
  sql::ResetGuard guard(stmt);
  stmt.bind(1, id);
  if (!stmt.step()) return std::nullopt;
  return read_job(stmt);
}

Job existing_job(sql::Db& db, JobId id) {
  auto job = job_by_id(db, id);
  if (!job) fail("store: no job {} (was it submitted to this store?)", id);
  return *job;
}

// Appends an event inside the caller's transaction; seq = last seq + 1.
void insert_event(sql::Db& db, JobId job, std::string_view kind, const std::string& payload,
                  int64_t time_us) {
  sql::Stmt& stmt = db.prepare(
      "INSERT INTO job_events (job_id, seq, time_us, kind, payload) VALUES (?1,"
      " (SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id = ?1), ?2, ?3, ?4)");
  stmt.bind_all(job, time_us, kind, payload);
  stmt.run();
}

void write_state(sql::Db& db, const Job& job, JobState state, const std::string& error,
                 int attempts, nlohmann::json event) {
  if (is_terminal(job.state) && state != job.state) {
    fail("store: job {} is already {}; a finished job cannot become {}", job.id,
         to_string(job.state), to_string(state));
  }
  int64_t t = to_us(now());
  // started: the first time the job ran; finished: when it first became terminal.
  std::optional<int64_t> started, finished;
  if (job.started) {
    started = to_us(*job.started);
  } else if (state == JobState::running) {
    started = t;
  }
  if (is_terminal(state)) finished = job.finished ? to_us(*job.finished) : t;
  std::optional<std::string> error_text;
  if (!error.empty()) error_text = error;

  sql::Stmt& stmt = db.prepare(
      "UPDATE jobs SET state = ?, updated_us = ?, started_us = ?, finished_us = ?,"
      " error = ?, attempts = ? WHERE id = ?");
  stmt.bind_all(to_string(state), t, started, finished, error_text,
                static_cast<int64_t>(attempts), job.id);
  stmt.run();

  event["state"] = to_string(state);
  if (!error.empty()) event["error"] = error;
  insert_event(db, job.id, "state", event.dump(), t);
}

}  // namespace

SubmitResult Store::submit_job(const NewJob& job) {
  if (job.submission_id && job.submission_id->empty()) {
    fail("store: submission_id is empty; leave it out or give a non-empty id");
  }
  std::string spec = job.spec.dump();
  SubmitResult result = writer_->call([&](sql::Db& db) {
    int64_t t = to_us(now());
    sql::Stmt& insert = db.prepare(
        "INSERT INTO jobs (submission_id, type, spec, state, priority, created_us,"
        " updated_us, attempts) VALUES (?, ?, ?, 'queued', ?, ?, ?, 0)"
        " ON CONFLICT (submission_id) DO NOTHING RETURNING id");
    std::optional<JobId> id;
    {
      sql::ResetGuard guard(insert);
      insert.bind_all(job.submission_id, to_string(job.type), spec,
                      static_cast<int64_t>(job.priority), t, t);
      if (insert.step()) id = insert.int64(0);  // no row: the submission_id existed
      while (insert.step()) {
      }
    }

    SubmitResult out;
    out.created = id.has_value();
    if (out.created) {
      insert_event(db, *id, "state", R"({"state":"queued"})", t);
      out.job = existing_job(db, *id);
      return out;
    }
    sql::Stmt& find = db.prepare(std::string(kJobColumns) + " WHERE submission_id = ?");
    sql::ResetGuard guard(find);
    find.bind(1, *job.submission_id);
    if (!find.step()) fail("store: submission '{}' conflicted but was not found",
                           *job.submission_id);
    out.job = read_job(find);
    return out;
  });
  // Committed: decisions may name it from now on.
  JobId seen = last_job_id_.load();
  while (result.job.id > seen && !last_job_id_.compare_exchange_weak(seen, result.job.id)) {
  }
  return result;
}

void Store::update_job_state(JobId id, JobState state, const std::string& error) {
  writer_->call([&](sql::Db& db) {
    Job job = existing_job(db, id);
    write_state(db, job, state, error, job.attempts, nlohmann::json::object());
  });
}

int Store::begin_attempt(JobId id) {
  return writer_->call([&](sql::Db& db) {
    Job job = existing_job(db, id);
    int attempts = job.attempts + 1;
    write_state(db, job, JobState::running, {}, attempts, {{"attempt", attempts}});
    return attempts;
  });
}

std::optional<Job> Store::get_job(JobId id) const {
  auto lease = readers_->acquire();
  return job_by_id(lease.db(), id);
}

std::optional<Job> Store::find_job(const std::string& submission_id) const {
  auto lease = readers_->acquire();
  sql::Stmt& stmt = lease.db().prepare(std::string(kJobColumns) + " WHERE submission_id = ?");
  sql::ResetGuard guard(stmt);
  stmt.bind(1, submission_id);
  if (!stmt.step()) return std::nullopt;
  return read_job(stmt);
}

std::vector<Job> Store::list_jobs(std::optional<JobState> state, int limit,
                                  JobId before_id) const {
  if (limit < 1 || limit > 1000) fail("store: bad job list limit {}: expected 1 to 1000", limit);
  auto lease = readers_->acquire();
  sql::Stmt& stmt = lease.db().prepare(
      std::string(kJobColumns) +
      " WHERE (?1 IS NULL OR state = ?1) AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3");
  sql::ResetGuard guard(stmt);
  std::optional<std::string> state_text;
  if (state) state_text = std::string(to_string(*state));
  stmt.bind_all(state_text, before_id, static_cast<int64_t>(limit));
  std::vector<Job> out;
  while (stmt.step()) out.push_back(read_job(stmt));
  return out;
}

std::vector<Job> Store::unfinished_jobs() const {
  auto lease = readers_->acquire();
  sql::Stmt& stmt = lease.db().prepare(std::string(kJobColumns) +
                                       " WHERE state IN ('queued', 'running')"
                                       " ORDER BY priority DESC, id");
  sql::ResetGuard guard(stmt);
  std::vector<Job> out;
  while (stmt.step()) out.push_back(read_job(stmt));
  return out;
}

void Store::append_event(JobId job, const std::string& kind, const nlohmann::json& payload) {
  if (kind.empty()) fail("store: event kind is empty (job {})", job);
  std::string text = payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  int64_t t = to_us(now());
  writer_->post([job, kind, text = std::move(text), t](sql::Db& db) {
    insert_event(db, job, kind, text, t);
  });
}

std::vector<JobEvent> Store::job_events(JobId job, int64_t after_seq, int limit) const {
  if (limit < 1 || limit > 10000) fail("store: bad event limit {}: expected 1 to 10000", limit);
  auto lease = readers_->acquire();
  sql::Stmt& stmt = lease.db().prepare(
      "SELECT seq, time_us, kind, payload FROM job_events WHERE job_id = ? AND seq > ?"
      " ORDER BY seq LIMIT ?");
  sql::ResetGuard guard(stmt);
  stmt.bind_all(job, after_seq, static_cast<int64_t>(limit));
  std::vector<JobEvent> out;
  while (stmt.step()) {
    out.push_back({job, stmt.int64(0), from_us(stmt.int64(1)), stmt.text(2),
                   nlohmann::json::parse(stmt.text(3))});
  }
  return out;
}

void Store::save_checkpoint(const Checkpoint& checkpoint) {
  if (checkpoint.step < 0) fail("store: checkpoint step {} is negative", checkpoint.step);
  int keep = std::max(1, options_.keep_checkpoints);
  writer_->call([&](sql::Db& db) {
    sql::Stmt& insert = db.prepare(
        "INSERT OR REPLACE INTO checkpoints (job_id, step, parameters, optimizer, created_us)"
        " VALUES (?, ?, ?, ?, ?)");
    insert.bind(1, checkpoint.job).bind(2, checkpoint.step);
    insert.bind_blob(3, checkpoint.parameters).bind_blob(4, checkpoint.optimizer);
    insert.bind(5, to_us(now()));
    insert.run();

    sql::Stmt& prune = db.prepare(
        "DELETE FROM checkpoints WHERE job_id = ?1 AND step NOT IN"
        " (SELECT step FROM checkpoints WHERE job_id = ?1 ORDER BY step DESC LIMIT ?2)");
    prune.bind_all(checkpoint.job, static_cast<int64_t>(keep));
    prune.run();
  });
}

std::optional<Checkpoint> Store::latest_checkpoint(JobId job) const {
  auto lease = readers_->acquire();
  sql::Stmt& stmt = lease.db().prepare(
      "SELECT step, parameters, optimizer, created_us FROM checkpoints WHERE job_id = ?"
      " ORDER BY step DESC LIMIT 1");
  sql::ResetGuard guard(stmt);
  stmt.bind(1, job);
  if (!stmt.step()) return std::nullopt;
  return Checkpoint{job, stmt.int64(0), stmt.blob(1), stmt.blob(2), from_us(stmt.int64(3))};
}

}  // namespace t2::store
