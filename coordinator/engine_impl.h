// Engine's state, shared by its parts: engine.cpp (ranks, commands, dispatch,
// snapshots), engine_inference.cpp (shards and their results), engine_train.cpp
// (training steps and checkpoints), engine_resume.cpp (start-up). Everything
// here is touched on the MPI thread only, except what `mutex` guards.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "coordinator/engine.h"
#include "scheduler/cost_model.h"
#include "t2/log.h"

namespace t2::coordinator {

using scheduler::PlacementId;
using SchedJobId = scheduler::JobId;

// Ephemeral (synchronous) jobs get scheduler ids above every store id.
constexpr SchedJobId kEphemeralBase = SchedJobId(1) << 40;

struct RankInfo {
  int rank = 0;
  int pid = 0;
  std::string host;
  bool alive = false;
  double last_seen = 0;
  std::string model_sha256, matrix_set;
  int64_t total_rank = 0;
  double tokens_per_s = 0;  // EWMA over finished shards
  int64_t tokens = 0;
  std::set<std::string> experts_sent;
};

struct StepRun {
  uint32_t step = 0;  // global step index (0-based) this run makes
  std::vector<int> group;
  int leader = 0;
  uint64_t comm_key = 0;
  std::set<PlacementId> outstanding;
  double reward_sum = 0, n = 0, correct = 0;
  int64_t tokens = 0;
  double slowest = 0, allreduce = 0, started = 0;
  std::vector<float> state;  // from the leader
  int64_t adam_t = 0;
};

struct LiveJob {
  SchedJobId id = 0;  // the store id, or kEphemeralBase + n
  bool ephemeral = false;
  store::JobType type = store::JobType::generate;
  int priority = 0;
  PreparedJob prep;
  bool in_planner = false;
  double started = 0;

  // Inference: item k of the planner's job is prep.items[remaining[k]].
  std::vector<uint8_t> done;
  size_t done_count = 0;
  std::vector<uint32_t> remaining;
  std::set<std::string> decided;  // request ids whose decision row exists
  std::map<std::string, std::pair<int64_t, int64_t>> per_task;  // task -> (n, correct)
  int64_t tokens = 0;
  std::map<PlacementId, int64_t> partial;  // items a running shard reported done
  scheduler::ShardSpec shard_spec;         // what the planner estimates its shards as
  double cost_error_sum = 0;               // the cost model's |error| / measured...
  int64_t cost_error_shards = 0;           // ...over this job's finished placements
  std::vector<nlohmann::json> outputs;     // ephemeral: results by item
  SyncReply reply;
  double deadline = 0;

  // Training.
  std::vector<float> state;  // p, m, v (3 x total_rank); empty: not started
  int64_t adam_t = 0;
  uint32_t step_base = 0;    // steps done before this planner job
  uint32_t steps_done = 0;   // global
  uint32_t checkpointed = 0; // the step of the newest stored checkpoint
  double baseline = 0;       // running mean reward
  std::optional<StepRun> step;
  std::vector<uint32_t> pool;  // training example indices, shuffled by seed
  std::string base_model_hash, matrix_set;
  int64_t total_rank = 0;
};

struct PlacementInfo {
  PlacementId id = 0;
  SchedJobId job = 0;
  uint32_t shard = 0;
  int rank = 0;
  std::vector<uint32_t> items;  // inference: item indices
  store::DecisionId decision = 0;
  double sent_at = 0;
  bool train = false;
  uint64_t comm_key = 0;  // training: the step group's communicator
};

struct Command {
  enum Kind { kSubmit, kCancel, kSync } kind = kSubmit;
  store::Job job;
  PreparedJob prepared;
  store::JobId cancel_id = 0;
  CancelReply cancel_reply;
  SyncRequest sync;
  SyncReply sync_reply;
};

struct Engine::Impl {
  Impl(const ServiceConfig& c, store::Store& s, comm::Channel& ch, const TaskCatalog& t);

  const ServiceConfig& config;
  store::Store& store;
  comm::Channel& channel;
  const TaskCatalog& tasks;
  std::shared_ptr<spdlog::logger> log = t2::log::get("coord");

  scheduler::CostModel cost;
  scheduler::Planner planner;

  std::map<int, RankInfo> ranks;
  std::unordered_map<SchedJobId, LiveJob> jobs;
  std::deque<SchedJobId> waiting;  // jobs held until workers are up
  std::unordered_map<PlacementId, PlacementInfo> placements;
  std::map<std::string, ExpertEntry> experts_by_name;  // guarded by mutex
  SchedJobId next_ephemeral = kEphemeralBase;
  bool workers_ready = false;
  double start_time = 0, ready_deadline = 0, last_liveness = 0, last_dispatch = 0;
  double last_publish = 0;
  double clock = 0;  // the latest `now` seen: the planner's monotonic time
  double drain_started = -1;
  std::atomic<bool>* draining = nullptr;

  // Guarded: commands in, snapshots out.
  mutable std::mutex mutex;
  std::deque<Command> commands;
  std::unordered_map<store::JobId, nlohmann::json> progress;  // live jobs
  std::map<std::string, int64_t> job_states;  // state -> count
  std::map<std::pair<std::string, std::string>, int64_t> decision_counts;  // (kind, strategy)
  nlohmann::json rank_snapshot = nlohmann::json::array();
  int64_t queue_depth = 0;
  int64_t ranks_lost = 0;
  double train_tokens_per_s = 0, allreduce_share = 0;
  double cost_mape = 0;              // the cost model's recent error...
  int64_t cost_mape_shards = 0;      // ...over this many shards,
  int64_t cost_shards = 0;           // out of all it learned from (restarts included)
  int64_t cost_restored_shards = 0;  // of which loaded from the store at start
  double cost_saved_at = -1e9;       // MPI thread only
  bool cost_dirty = false;           // MPI thread only

  // engine.cpp
  void handle_command(Command& c, double now);
  void on_hello(int rank, const nlohmann::json& body, double now);
  void check_liveness(double now);
  void lose_rank(int rank, const std::string& why, double now);
  void handle_aborts(const std::vector<scheduler::Abort>& aborts, const std::string& why);
  void dispatch(double now);
  void admit(LiveJob& job, double now);  // into the planner
  void publish(double now);
  void count_state(const std::string& from, const std::string& to);
  void fail_job(LiveJob& job, const std::string& error);
  void forget(SchedJobId id);
  store::DecisionId record_placement(const scheduler::Placement& p, const LiveJob& job,
                                     uint64_t prompt_tokens);
  void count_decision(const std::string& kind, const std::string& strategy);
  void attach_experts(comm::Envelope& e, int rank, const std::vector<std::string>& names);
  std::vector<std::string> candidate_experts(const LiveJob& job) const;
  std::string model_hash() const;

  // engine_inference.cpp
  scheduler::Job scheduler_job(LiveJob& job) const;
  void send_shard(const scheduler::Placement& p, LiveJob& job, double now);
  void on_shard_result(PlacementInfo& info, const comm::Envelope& e, double now);
  void finish_inference(LiveJob& job, double now);
  void on_progress(const nlohmann::json& body);
  void submit_sync(Command& c, double now);
  void expire_sync(double now);

  // engine_train.cpp
  void prepare_training(LiveJob& job);
  void send_step(std::vector<scheduler::Placement>& slices, LiveJob& job, double now);
  void on_step_result(PlacementInfo& info, const comm::Envelope& e, double now);
  void finish_step(LiveJob& job, double now, bool job_finished);
  void checkpoint(LiveJob& job);
  void checkpoint_all();  // every training job ahead of its last checkpoint
  void finish_training(LiveJob& job);

  // engine_cost.cpp
  void load_cost_model();
  void learned(SchedJobId job, const scheduler::Completion& c, double now);
  void save_cost_model(double now, bool force);
  nlohmann::json cost_summary(const LiveJob& job) const;
  void log_cost(const LiveJob& job) const;

  // engine_resume.cpp
  void load_experts();
  void resume_jobs(double now);
  void register_expert_files();
  void on_expert_data(const comm::Envelope& e);
};

// Helpers shared by the parts.
std::vector<uint8_t> float_bytes(const std::vector<float>& v);
std::vector<float> bytes_floats(const std::vector<uint8_t>& b);
std::string request_id(store::JobId job, uint32_t item);

}  // namespace t2::coordinator
