// store::Store — t2's memory and audit trail on one SQLite file, used by the
// coordinator only. One writer thread owns the write connection: calls marked
// "durable" return after their transaction committed; "queued" calls return at
// once and commit in order with the next batch (flush() waits for them).
// Reads use their own connections and never wait for the writer.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/audit.h"
#include "store/options.h"
#include "store/records.h"

namespace t2::store {

class ReaderPool;
class Writer;

struct StoreStats {
  int64_t ops_committed = 0;
  int64_t ops_failed = 0;  // queued ops that failed and were dropped (logged)
  int64_t transactions = 0;
  int64_t largest_batch = 0;
  int64_t queued = 0;
  std::string last_error;
  double writer_cpu_seconds = 0;  // busy time of the writer thread
};

class Store {
 public:
  // Opens or creates the store at `path`, migrating it to the current schema.
  // Throws t2::Error, leaving the file untouched, when it is corrupt, foreign,
  // from a newer schema, or already open for writing by another process.
  static std::unique_ptr<Store> open(const std::string& path, const Options& options = {});
  ~Store();  // commits everything queued first
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // --- jobs -------------------------------------------------------------
  // Durable. A submission_id seen before returns that job with created=false.
  SubmitResult submit_job(const NewJob& job);
  // Durable, with a "state" event in the same transaction. Terminal states
  // (succeeded, failed, cancelled) are final: leaving one throws.
  void update_job_state(JobId id, JobState state, const std::string& error = {});
  // Durable: state running, attempts + 1; returns the new attempt count.
  int begin_attempt(JobId id);
  std::optional<Job> get_job(JobId id) const;
  std::optional<Job> find_job(const std::string& submission_id) const;
  // Newest first; `state` filters; `before_id` pages (0: from the newest).
  std::vector<Job> list_jobs(std::optional<JobState> state = {}, int limit = 100,
                             JobId before_id = 0) const;
  // Queued and running jobs, by priority then age: what to resume at start-up.
  std::vector<Job> unfinished_jobs() const;

  // Queued. Sequence numbers are per job, in commit order.
  void append_event(JobId job, const std::string& kind, const nlohmann::json& payload);
  std::vector<JobEvent> job_events(JobId job, int64_t after_seq = 0, int limit = 1000) const;

  // --- training checkpoints ---------------------------------------------
  // Durable; keeps the newest options.keep_checkpoints per job.
  void save_checkpoint(const Checkpoint& checkpoint);
  std::optional<Checkpoint> latest_checkpoint(JobId job) const;

  // --- experts ------------------------------------------------------------
  // Durable. A name is registered once; a second registration throws.
  void register_expert(const Expert& expert);
  std::optional<Expert> get_expert(const std::string& name) const;
  // Without the vector bytes (vector_bytes tells their size); `task` filters.
  std::vector<Expert> list_experts(const std::optional<std::string>& task = {}) const;

  // --- decisions and metrics ---------------------------------------------
  // Queued; the id is assigned now, so complete_decision can follow at once.
  // Throws (and records nothing) on an empty strategy, an unknown job, a blank
  // or repeated expert name, or a weight or cost that is not finite.
  DecisionId record_decision(const NewDecision& decision);
  // Queued; sets what the outcome holds. Unknown ids are logged and dropped.
  void complete_decision(DecisionId id, const DecisionOutcome& outcome);
  // Queued.
  void record_metric(JobId job, const std::string& key, int64_t step, double value);
  std::vector<Metric> metrics(JobId job, const std::string& key) const;

  // --- service state ------------------------------------------------------
  // Queued; one JSON document per key, replaced whole (e.g. "scheduler.cost_model").
  void save_state(const std::string& key, const nlohmann::json& value);
  std::optional<nlohmann::json> load_state(const std::string& key) const;

  // Returns once everything queued before it has committed.
  void flush();

  // --- audit ----------------------------------------------------------------
  const AuditReader& audit() const { return *audit_; }
  DecisionPage query_decisions(const DecisionFilter& filter, const PageRequest& page) const {
    return audit_->query(filter, page);
  }
  Aggregate aggregate_decisions(const std::vector<GroupField>& group_by,
                                const DecisionFilter& filter) const {
    return audit_->aggregate(group_by, filter);
  }

  // --- health -----------------------------------------------------------------
  // "ok", or the problems PRAGMA integrity_check found (read connection).
  std::string integrity_check() const;
  StoreStats stats() const;
  const std::string& path() const { return path_; }
  const Options& options() const { return options_; }

 private:
  Store(std::string path, const Options& options);

  std::string path_;
  Options options_;
  int lock_fd_ = -1;  // flock held while open: one writing process per file
  std::unique_ptr<Writer> writer_;
  std::shared_ptr<ReaderPool> readers_;
  std::shared_ptr<AuditReader> audit_;
  std::atomic<DecisionId> next_decision_id_{1};
  std::atomic<JobId> last_job_id_{0};  // job ids are 1..last, none deleted
};

}  // namespace t2::store
