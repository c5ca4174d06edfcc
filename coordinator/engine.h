// coordinator::Engine — rank 0's job state machine. It runs on the MPI thread
// (every call but the "any thread" ones): it resumes unfinished jobs from the
// store, feeds jobs and ranks to the scheduler's Planner, sends each placement
// to its rank as a shard or a training-step slice, and writes what comes back —
// results, decisions, progress events, checkpoints, experts — to the store, the
// only writer. HTTP threads talk to it through a command queue and read
// snapshots it publishes. Invariants: a job's state changes only here; every
// placement is one decision row, completed with its measured seconds; a
// request's decision row is written once (request ids are deterministic and
// checked on resume).
#pragma once

#include <nlohmann/json.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "comm/channel.h"
#include "coordinator/config.h"
#include "coordinator/job_spec.h"
#include "scheduler/planner.h"
#include "store/store.h"

namespace t2::coordinator {

// A synchronous request (POST /v1/generate, /v1/chat/completions): a few
// prompts run as a high-priority job the store does not keep; its decision rows
// carry request ids but no job.
struct SyncRequest {
  std::string request_id;
  std::string model = kModelBase;
  int max_tokens = 128;
  double temperature = 0;
  uint64_t seed = 0;
  bool chat = true;
  std::vector<std::string> prompts;       // one item each...
  std::vector<nlohmann::json> messages;   // ...or one chat conversation each
};
// {"results": [...]} or {"error": {"status": 503, "code": ..., "message": ...}}.
using SyncReply = std::function<void(nlohmann::json)>;
using CancelReply = std::function<void(nlohmann::json)>;

struct ExpertEntry {
  std::string name, task, category, base_model_hash, matrix_set;
  std::vector<float> p;
};

class Engine {
 public:
  Engine(const ServiceConfig& config, store::Store& store, comm::Channel& channel,
         const TaskCatalog& tasks);
  ~Engine();

  // --- any thread -------------------------------------------------------------
  // A job the store has just accepted (state queued).
  void submitted(const store::Job& job, PreparedJob prepared);
  void cancel(store::JobId id, CancelReply reply);
  void run_sync(SyncRequest request, SyncReply reply);
  // Live progress of a job the engine holds (null when it holds none).
  nlohmann::json progress(store::JobId id) const;
  nlohmann::json health() const;
  std::string metrics_text() const;  // Prometheus text, engine part
  bool accepting() const { return !draining_; }
  std::optional<ExpertEntry> expert(const std::string& name) const;
  bool expert_exists(const std::string& name) const;
  void begin_drain();  // stop accepting and dispatching; finish what runs

  // --- MPI thread ---------------------------------------------------------------
  void start(double now);  // registers config experts, resumes unfinished jobs
  void on_message(comm::Incoming&& in, double now);
  // Commands, liveness, dispatch; true when it did anything.
  bool tick(double now);
  // Draining and nothing left in flight (or the drain timeout passed).
  bool drained(double now);
  void shutdown_workers();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> draining_{false};
};

}  // namespace t2::coordinator
