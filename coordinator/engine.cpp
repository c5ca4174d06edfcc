// Engine core: ranks joining and getting lost, the command queue from HTTP
// threads, planner dispatch, and the snapshots HTTP threads read. Shards,
// training steps and start-up live in the engine_*.cpp files beside it.
#include "coordinator/engine_impl.h"

#include <fmt/format.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmath>
#include <fstream>

#include "t2/error.h"

namespace t2::coordinator {

using nlohmann::json;

std::vector<uint8_t> float_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(float));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

std::vector<float> bytes_floats(const std::vector<uint8_t>& b) {
  std::vector<float> out(b.size() / sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), b.data(), out.size() * sizeof(float));
  return out;
}

std::string request_id(store::JobId job, uint32_t item) {
  return fmt::format("job{}-item{}", job, item);
}

namespace {

scheduler::PlannerOptions planner_options(const ServiceConfig& c) {
  scheduler::PlannerOptions o;
  o.split.max_batch = c.max_shard_batch;
  o.split.min_shard_seconds = c.min_shard_seconds;
  return o;
}

// Same host: a worker whose process is gone (or a zombie) is lost at once,
// without waiting for its heartbeats to stop.
bool process_gone(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return false;
  const char state = line[paren + 2];
  return state == 'Z' || state == 'X';
}

std::string local_host() {
  char name[256] = {0};
  gethostname(name, sizeof(name) - 1);
  return name;
}

}  // namespace

Engine::Impl::Impl(const ServiceConfig& c, store::Store& s, comm::Channel& ch,
                   const TaskCatalog& t)
    : config(c), store(s), channel(ch), tasks(t), planner(cost, planner_options(c)) {}

Engine::Engine(const ServiceConfig& config, store::Store& store, comm::Channel& channel,
               const TaskCatalog& tasks)
    : impl_(std::make_unique<Impl>(config, store, channel, tasks)) {
  impl_->draining = &draining_;
}

Engine::~Engine() = default;

// ---- any thread --------------------------------------------------------------

void Engine::submitted(const store::Job& job, PreparedJob prepared) {
  Command c;
  c.kind = Command::kSubmit;
  c.job = job;
  c.prepared = std::move(prepared);
  std::lock_guard lock(impl_->mutex);
  impl_->commands.push_back(std::move(c));
}

void Engine::cancel(store::JobId id, CancelReply reply) {
  Command c;
  c.kind = Command::kCancel;
  c.cancel_id = id;
  c.cancel_reply = std::move(reply);
  std::lock_guard lock(impl_->mutex);
  impl_->commands.push_back(std::move(c));
}

void Engine::run_sync(SyncRequest request, SyncReply reply) {
  Command c;
  c.kind = Command::kSync;
  c.sync = std::move(request);
  c.sync_reply = std::move(reply);
  std::lock_guard lock(impl_->mutex);
  impl_->commands.push_back(std::move(c));
}

json Engine::progress(store::JobId id) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->progress.find(id);
  return it == impl_->progress.end() ? json() : it->second;
}

json Engine::health() const {
  std::lock_guard lock(impl_->mutex);
  int64_t alive = 0, total = 0;
  for (const auto& r : impl_->rank_snapshot) {
    ++total;
    if (r.value("alive", false)) ++alive;
  }
  const int workers = impl_->channel.size() - 1;
  std::string status = "ok";
  if (draining_) status = "draining";
  else if (alive < workers) status = alive == 0 ? "starting" : "degraded";
  if (impl_->ranks_lost > 0 && !draining_) status = alive == 0 ? "down" : "degraded";
  return {{"status", status},
          {"workers", {{"expected", workers}, {"alive", alive}, {"lost", impl_->ranks_lost}}},
          {"ranks", impl_->rank_snapshot},
          {"queue_depth", impl_->queue_depth},
          {"cost_model", {{"mape", impl_->cost_mape},
                          {"mape_shards", impl_->cost_mape_shards},
                          {"shards", impl_->cost_shards},
                          {"restored_shards", impl_->cost_restored_shards}}},
          {"accepting", !draining_.load()}};
}

std::optional<ExpertEntry> Engine::expert(const std::string& name) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->experts_by_name.find(name);
  if (it == impl_->experts_by_name.end()) return std::nullopt;
  return it->second;
}

bool Engine::expert_exists(const std::string& name) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->experts_by_name.count(name) > 0;
}

std::string Engine::metrics_text() const {
  const Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  std::string out;
  out += "# HELP t2_jobs Jobs in the store by state.\n# TYPE t2_jobs gauge\n";
  for (const char* state : {"queued", "running", "succeeded", "failed", "cancelled"}) {
    auto it = m.job_states.find(state);
    out += fmt::format("t2_jobs{{state=\"{}\"}} {}\n", state,
                       it == m.job_states.end() ? 0 : it->second);
  }
  out += "# HELP t2_queue_depth Shards and jobs waiting for a rank.\n"
         "# TYPE t2_queue_depth gauge\n";
  out += fmt::format("t2_queue_depth {}\n", m.queue_depth);
  out += "# HELP t2_rank_tokens_per_second Generated tokens per second of each worker rank.\n"
         "# TYPE t2_rank_tokens_per_second gauge\n";
  for (const auto& r : m.rank_snapshot)
    out += fmt::format("t2_rank_tokens_per_second{{rank=\"{}\"}} {:.3f}\n", r["rank"].get<int>(),
                       r["tokens_per_s"].get<double>());
  out += "# HELP t2_rank_tokens_total Tokens generated by each worker rank.\n"
         "# TYPE t2_rank_tokens_total counter\n";
  for (const auto& r : m.rank_snapshot)
    out += fmt::format("t2_rank_tokens_total{{rank=\"{}\"}} {}\n", r["rank"].get<int>(),
                       r["tokens"].get<int64_t>());
  out += "# HELP t2_rank_up Whether a worker rank is alive.\n# TYPE t2_rank_up gauge\n";
  for (const auto& r : m.rank_snapshot)
    out += fmt::format("t2_rank_up{{rank=\"{}\"}} {}\n", r["rank"].get<int>(),
                       r["alive"].get<bool>() ? 1 : 0);
  out += "# HELP t2_ranks_lost_total Worker ranks lost since start.\n"
         "# TYPE t2_ranks_lost_total counter\n";
  out += fmt::format("t2_ranks_lost_total {}\n", m.ranks_lost);
  out += "# HELP t2_decisions_total Decision rows written since start, by kind and strategy.\n"
         "# TYPE t2_decisions_total counter\n";
  for (const auto& [key, n] : m.decision_counts)
    out += fmt::format("t2_decisions_total{{kind=\"{}\",strategy=\"{}\"}} {}\n", key.first,
                       key.second, n);
  out += "# HELP t2_train_rollout_tokens_per_second Rollout tokens per second of the last "
         "training step.\n# TYPE t2_train_rollout_tokens_per_second gauge\n";
  out += fmt::format("t2_train_rollout_tokens_per_second {:.3f}\n", m.train_tokens_per_s);
  out += "# HELP t2_train_allreduce_share Share of the last training step spent in the "
         "gradient all-reduce.\n# TYPE t2_train_allreduce_share gauge\n";
  out += fmt::format("t2_train_allreduce_share {:.5f}\n", m.allreduce_share);
  out += "# HELP t2_cost_model_mape The scheduler cost model's mean absolute percentage "
         "error (0.1 = 10 %) over its recent shards.\n# TYPE t2_cost_model_mape gauge\n";
  out += fmt::format("t2_cost_model_mape {:.6f}\n", m.cost_mape);
  out += "# HELP t2_cost_model_mape_shards Shards t2_cost_model_mape is taken over.\n"
         "# TYPE t2_cost_model_mape_shards gauge\n";
  out += fmt::format("t2_cost_model_mape_shards {}\n", m.cost_mape_shards);
  out += "# HELP t2_cost_model_shards_total Shards the cost model learned from, runs "
         "before a restart included.\n# TYPE t2_cost_model_shards_total counter\n";
  out += fmt::format("t2_cost_model_shards_total {}\n", m.cost_shards);
  return out;
}

void Engine::begin_drain() { draining_ = true; }

// ---- MPI thread: start, messages, ticks ----------------------------------------

void Engine::start(double now) {
  Impl& m = *impl_;
  m.start_time = now;
  m.ready_deadline = now + 600;  // workers load the model and SVD cache first
  m.load_experts();
  // Jobs by state, counted once; the engine keeps the counts from here on.
  store::JobId before = 0;
  for (;;) {
    auto page = m.store.list_jobs(std::nullopt, 1000, before);
    if (page.empty()) break;
    std::lock_guard lock(m.mutex);
    for (const auto& j : page) ++m.job_states[std::string(store::to_string(j.state))];
    before = page.back().id;
  }
  m.load_cost_model();
  m.resume_jobs(now);
}

void Engine::on_message(comm::Incoming&& in, double now) {
  Impl& m = *impl_;
  now = m.clock = std::max(m.clock, now);  // the planner needs time that never goes back
  auto rank = m.ranks.find(in.source);
  if (rank != m.ranks.end()) rank->second.last_seen = now;
  const json& body = in.envelope.body;
  try {
    switch (in.envelope.kind) {
      case comm::Kind::kHello: m.on_hello(in.source, body, now); break;
      case comm::Kind::kHeartbeat: break;
      case comm::Kind::kProgress: m.on_progress(body); break;
      case comm::Kind::kExpertData: m.on_expert_data(in.envelope); break;
      case comm::Kind::kResult:
      case comm::Kind::kFailed: {
        const PlacementId id = body.value("placement", PlacementId(0));
        auto it = m.placements.find(id);
        if (it == m.placements.end()) {
          m.log->debug("result of placement {} from rank {} dropped (no longer wanted)", id,
                       in.source);
          break;
        }
        if (in.envelope.kind == comm::Kind::kFailed) {
          const PlacementInfo info = it->second;
          m.placements.erase(it);
          auto job = m.jobs.find(info.job);
          if (job != m.jobs.end())
            m.fail_job(job->second, fmt::format("rank {}: {}", in.source,
                                                body.value("error", std::string("failed"))));
        } else if (it->second.train) {
          m.on_step_result(it->second, in.envelope, now);
        } else {
          m.on_shard_result(it->second, in.envelope, now);
        }
        break;
      }
      default:
        m.log->warn("unexpected '{}' message from rank {}", comm::kind_name(in.envelope.kind),
                    in.source);
    }
  } catch (const std::exception& e) {
    m.log->error("handling '{}' from rank {}: {}", comm::kind_name(in.envelope.kind),
                 in.source, e.what());
  }
}

bool Engine::tick(double now) {
  Impl& m = *impl_;
  now = m.clock = std::max(m.clock, now);
  std::deque<Command> commands;
  {
    std::lock_guard lock(m.mutex);
    commands.swap(m.commands);
  }
  for (Command& c : commands) {
    try {
      m.handle_command(c, now);
    } catch (const std::exception& e) {
      m.log->error("command failed: {}", e.what());
      if (c.cancel_reply)
        c.cancel_reply({{"status", 500}, {"code", "internal"}, {"message", e.what()}});
      if (c.sync_reply)
        c.sync_reply({{"error", {{"status", 500}, {"code", "internal"}, {"message", e.what()}}}});
    }
  }

  if (!m.workers_ready) {
    size_t alive = 0;
    for (const auto& [r, info] : m.ranks) alive += info.alive ? 1 : 0;
    if (alive == size_t(m.channel.size() - 1) || (alive > 0 && now > m.ready_deadline)) {
      m.workers_ready = true;
      m.log->info("{} worker rank(s) ready; scheduling {} waiting job(s)", alive,
                  m.waiting.size());
      m.register_expert_files();
    }
  }
  if (m.workers_ready && !draining_) {
    while (!m.waiting.empty()) {
      const SchedJobId id = m.waiting.front();
      m.waiting.pop_front();
      auto it = m.jobs.find(id);
      if (it == m.jobs.end()) continue;
      try {
        m.admit(it->second, now);
      } catch (const std::exception& e) {
        m.fail_job(it->second, fmt::format("could not schedule: {}", e.what()));
      }
    }
  }

  if (now - m.last_liveness > 0.5) {
    m.last_liveness = now;
    try {
      m.check_liveness(now);
      m.expire_sync(now);
    } catch (const std::exception& e) {
      m.log->error("liveness: {}", e.what());
    }
  }
  const bool any = !commands.empty();
  if (!draining_ && (any || now - m.last_dispatch > 0.05)) {
    m.last_dispatch = now;
    try {
      m.dispatch(now);
    } catch (const std::exception& e) {
      m.log->error("dispatch: {}", e.what());  // logged; the service goes on
    }
  }
  if (any || now - m.last_publish > 0.1) {
    m.last_publish = now;
    m.publish(now);
  }
  m.save_cost_model(now, false);
  return any;
}

bool Engine::drained(double now) {
  Impl& m = *impl_;
  if (!draining_) return false;
  if (m.drain_started < 0) {
    m.drain_started = now;
    m.log->info("draining: {} placement(s) running; nothing new starts", m.placements.size());
  }
  const bool late = now - m.drain_started > m.config.drain_timeout_s;
  if (!m.placements.empty() && !late) return false;
  if (late)
    m.log->warn("drain timeout: {} placement(s) still running; they run again after restart",
                m.placements.size());
  m.checkpoint_all();
  m.save_cost_model(now, true);
  return true;
}

void Engine::shutdown_workers() {
  Impl& m = *impl_;
  // Sync requests still waiting hear why.
  for (auto& [id, job] : m.jobs)
    if (job.ephemeral && job.reply)
      job.reply({{"error", {{"status", 503}, {"code", "shutting_down"},
                            {"message", "the service is stopping; retry after restart"}}}});
  for (const auto& [r, info] : m.ranks)
    if (info.alive) m.channel.post(r, comm::Envelope{comm::Kind::kShutdown, {}, {}});
}

// ---- ranks ---------------------------------------------------------------------

void Engine::Impl::on_hello(int rank, const json& body, double now) {
  RankInfo& r = ranks[rank];
  r.rank = rank;
  r.pid = body.value("pid", 0);
  r.host = body.value("host", std::string());
  r.model_sha256 = body.value("model_sha256", std::string());
  r.matrix_set = body.value("matrix_set", std::string());
  r.total_rank = body.value("total_rank", int64_t(0));
  r.alive = true;
  r.last_seen = now;
  planner.add_rank(rank, 1.0, now);
  log->info("rank {} ready: pid {} on {}, model {}…, {} SVF values ({}), {:.1f} s to load",
            rank, r.pid, r.host, r.model_sha256.substr(0, 12), r.total_rank, r.matrix_set,
            body.value("load_seconds", 0.0));
}

void Engine::Impl::check_liveness(double now) {
  const std::string here = local_host();
  std::vector<std::pair<int, std::string>> lost;
  for (auto& [rank, r] : ranks) {
    if (!r.alive) continue;
    if (r.host == here && r.pid > 0 && process_gone(r.pid))
      lost.push_back({rank, fmt::format("process {} exited", r.pid)});
    else if (now - r.last_seen > config.lost_after_s)
      lost.push_back({rank, fmt::format("silent for {:.0f} s", now - r.last_seen)});
  }
  for (auto& [rank, why] : lost) lose_rank(rank, why, now);
}

void Engine::Impl::lose_rank(int rank, const std::string& why, double now) {
  RankInfo& r = ranks[rank];
  r.alive = false;
  {
    std::lock_guard lock(mutex);
    ++ranks_lost;
  }
  log->error("rank {} lost: {}; its work goes back to the queue", rank, why);
  std::set<SchedJobId> affected;
  for (const auto& [id, p] : placements)
    if (p.rank == rank) affected.insert(p.job);
  channel.abandon_sends_to(rank);  // they will never complete; do not wait for them
  auto aborts = planner.remove_rank(rank, now);
  for (const auto& a : aborts) affected.insert(a.job);
  handle_aborts(aborts, fmt::format("rank {} lost", rank));
  for (SchedJobId id : affected) {
    auto it = jobs.find(id);
    if (it == jobs.end() || it->second.ephemeral) continue;
    store.append_event(store::JobId(id), "rank_lost",
                       {{"rank", rank}, {"reason", why},
                        {"effect", it->second.type == store::JobType::train
                                       ? "the running step is dropped and runs again"
                                       : "its shards run again on the remaining ranks"}});
  }
  publish(now);  // health and metrics say so at once
}

void Engine::Impl::handle_aborts(const std::vector<scheduler::Abort>& aborts,
                                 const std::string& why) {
  for (const auto& a : aborts) {
    auto it = placements.find(a.id);
    uint64_t key = 0;
    if (it != placements.end()) {
      auto job = jobs.find(it->second.job);
      if (it->second.train) {
        key = it->second.comm_key;
        if (job != jobs.end()) job->second.step.reset();  // the planner issues it again
      }
      placements.erase(it);
    }
    auto r = ranks.find(a.rank);
    if (r != ranks.end() && r->second.alive) {
      json body = {{"placement", a.id}, {"reason", scheduler::reason_name(a.reason)}};
      // Members of an aborted step must not wait for the others' gradients. The
      // key is never used again: the job ended, or its group lost a member.
      if (key) body["abort_allreduce"] = key;
      channel.post(a.rank, comm::Envelope{comm::Kind::kCancel, body, {}});
    }
    log->debug("placement {} (job {} shard {}) on rank {} aborted: {} ({})", a.id, a.job,
               a.shard, a.rank, scheduler::reason_name(a.reason), why);
  }
}

// ---- commands --------------------------------------------------------------------

void Engine::Impl::handle_command(Command& c, double now) {
  switch (c.kind) {
    case Command::kSubmit: {
      LiveJob job;
      job.id = SchedJobId(c.job.id);
      job.type = c.job.type;
      job.priority = c.job.priority;
      job.prep = std::move(c.prepared);
      job.done.assign(job.prep.items.size(), 0);
      count_state("", "queued");
      log->info("job {} ({}) queued: {}", c.job.id, store::to_string(c.job.type),
                job.type == store::JobType::train
                    ? fmt::format("{} steps of {} prompts", job.prep.train.steps,
                                  job.prep.train.prompts_per_step)
                    : fmt::format("{} requests, model {}", job.prep.items.size(),
                                  job.prep.model));
      auto [it, fresh] = jobs.emplace(job.id, std::move(job));
      if (fresh) waiting.push_back(it->first);
      break;
    }
    case Command::kCancel: {
      auto it = jobs.find(SchedJobId(c.cancel_id));
      if (it == jobs.end() || it->second.ephemeral) {
        auto stored = store.get_job(c.cancel_id);
        if (!stored) {
          c.cancel_reply({{"status", 404}, {"code", "not_found"},
                          {"message", fmt::format("no job {}", c.cancel_id)}});
        } else if (store::is_terminal(stored->state)) {
          c.cancel_reply({{"status", 409}, {"code", "conflict"},
                          {"message", fmt::format("job {} is already {}", c.cancel_id,
                                                  store::to_string(stored->state))}});
        } else {
          store.update_job_state(c.cancel_id, store::JobState::cancelled);
          count_state(std::string(store::to_string(stored->state)), "cancelled");
          c.cancel_reply({{"status", 200}});
        }
        break;
      }
      LiveJob& job = it->second;
      if (job.in_planner) handle_aborts(planner.cancel(job.id, now), "cancelled");
      const auto stored = store.get_job(c.cancel_id);
      const std::string from = stored ? std::string(store::to_string(stored->state)) : "queued";
      store.update_job_state(c.cancel_id, store::JobState::cancelled);
      count_state(from, "cancelled");
      log->info("job {} cancelled ({} of {} items done)", c.cancel_id, job.done_count,
                job.prep.items.size());
      forget(job.id);
      c.cancel_reply({{"status", 200}});
      break;
    }
    case Command::kSync:
      submit_sync(c, now);
      break;
  }
}

// ---- dispatch --------------------------------------------------------------------

void Engine::Impl::admit(LiveJob& job, double now) {
  if (job.type == store::JobType::train) {
    prepare_training(job);
    if (job.steps_done >= job.prep.train.steps) {  // resumed after its last step
      finish_training(job);
      return;
    }
  } else if (job.type == store::JobType::fewshot) {
    job.remaining = {0};  // one search over all its shots: one shard
  } else {
    job.remaining.clear();
    for (uint32_t i = 0; i < job.prep.items.size(); ++i)
      if (!job.done[i]) job.remaining.push_back(i);
  }
  if (!job.ephemeral) {
    const auto stored = store.get_job(store::JobId(job.id));
    const int attempt = store.begin_attempt(store::JobId(job.id));
    if (stored) count_state(std::string(store::to_string(stored->state)), "running");
    if (attempt > 1) log->info("job {}: attempt {}", job.id, attempt);
  }
  if (job.type != store::JobType::train && job.remaining.empty()) {
    finish_inference(job, now);  // everything was done before a restart
    return;
  }
  job.started = now;
  const scheduler::Job planned = scheduler_job(job);
  job.shard_spec = scheduler::shard_template(planned);
  planner.submit(planned, now);
  job.in_planner = true;
}

void Engine::Impl::dispatch(double now) {
  auto placements_now = planner.dispatch(now);
  std::map<SchedJobId, std::vector<scheduler::Placement>> steps;
  for (auto& p : placements_now) {
    auto it = jobs.find(p.job);
    if (it == jobs.end()) continue;
    try {
      if (p.reason == scheduler::PlacementReason::kTrainStep)
        steps[p.job].push_back(std::move(p));
      else
        send_shard(p, it->second, now);
    } catch (const std::exception& e) {
      fail_job(it->second, fmt::format("could not send placement {}: {}", p.id, e.what()));
    }
  }
  for (auto& [id, slices] : steps) {
    auto it = jobs.find(id);
    if (it == jobs.end()) continue;
    try {
      send_step(slices, it->second, now);
    } catch (const std::exception& e) {
      fail_job(it->second, fmt::format("could not send training step: {}", e.what()));
    }
  }
}

// ---- bookkeeping -----------------------------------------------------------------

void Engine::Impl::count_state(const std::string& from, const std::string& to) {
  std::lock_guard lock(mutex);
  if (!from.empty() && job_states[from] > 0) --job_states[from];
  ++job_states[to];
}

void Engine::Impl::count_decision(const std::string& kind, const std::string& strategy) {
  std::lock_guard lock(mutex);
  ++decision_counts[{kind, strategy}];
}

void Engine::Impl::fail_job(LiveJob& job, const std::string& error) {
  log->error("job {} failed: {}", job.id, error);
  if (job.in_planner) handle_aborts(planner.cancel(job.id, clock), "failed");
  if (job.ephemeral) {
    if (job.reply)
      job.reply({{"error", {{"status", 500}, {"code", "generation_failed"}, {"message", error}}}});
  } else {
    const auto stored = store.get_job(store::JobId(job.id));
    if (stored && !store::is_terminal(stored->state)) {
      store.update_job_state(store::JobId(job.id), store::JobState::failed, error);
      count_state(std::string(store::to_string(stored->state)), "failed");
    }
  }
  forget(job.id);
}

void Engine::Impl::forget(SchedJobId id) {
  for (auto it = placements.begin(); it != placements.end();)
    it = it->second.job == id ? placements.erase(it) : std::next(it);
  jobs.erase(id);
  std::lock_guard lock(mutex);
  progress.erase(store::JobId(id));
}

store::DecisionId Engine::Impl::record_placement(const scheduler::Placement& p,
                                                 const LiveJob& job, uint64_t prompt_tokens) {
  store::NewDecision d;
  d.kind = store::DecisionKind::placement;
  if (!job.ephemeral) d.job = store::JobId(job.id);
  d.task = job.prep.label;
  d.strategy = std::string(scheduler::reason_name(p.reason));
  d.rank = p.rank;
  d.estimated_cost = p.estimated_seconds;
  // What the cost model predicts now, so an audit can tell a bad guess of
  // output length from a slow rank (a shard that waited in a rank's queue was
  // estimated when it was planned, possibly before the latest shards were learned).
  scheduler::ShardSpec spec = job.shard_spec;
  spec.requests = std::max<uint32_t>(p.requests, 1);
  d.first_pass = {{"placement", p.id}, {"shard", p.shard}, {"requests", p.requests},
                  {"predicted_output_tokens", cost.predicted_output_tokens(spec)},
                  {"predicted_depth", cost.predicted_depth(spec.task)},
                  {"cost_task", spec.task}};
  if (prompt_tokens > 0) d.first_pass["prompt_tokens"] = prompt_tokens;
  if (!p.group.empty()) d.first_pass["group"] = p.group;
  const auto id = store.record_decision(d);
  count_decision("placement", d.strategy);
  return id;
}

std::string Engine::Impl::model_hash() const {
  for (const auto& [r, info] : ranks)
    if (!info.model_sha256.empty()) return info.model_sha256;
  return "";
}

std::vector<std::string> Engine::Impl::candidate_experts(const LiveJob& job) const {
  std::vector<std::string> out;
  const std::string& model = job.prep.model;
  if (model == kModelBase) return out;
  const std::string hash = model_hash();
  std::lock_guard lock(mutex);
  if (model == kModelAuto) {
    // Prompt dispatch picks a category, so it gets one expert per category.
    // LIMITATION: with several experts of one category the first by name wins;
    // choosing by validation accuracy (or mixing them) would lift it.
    std::set<std::string> categories;
    for (const auto& [name, e] : experts_by_name)
      if (e.base_model_hash == hash && e.matrix_set == config.matrix_set &&
          !e.category.empty() && e.category != "other" && categories.insert(e.category).second)
        out.push_back(name);
  } else if (experts_by_name.count(model)) {
    out.push_back(model);
  }
  return out;
}

void Engine::Impl::attach_experts(comm::Envelope& e, int rank,
                                  const std::vector<std::string>& names) {
  RankInfo& r = ranks[rank];
  json list = json::array(), in_blob = json::array();
  std::vector<float> blob;
  std::lock_guard lock(mutex);
  for (const auto& name : names) {
    const ExpertEntry& x = experts_by_name.at(name);
    list.push_back({{"name", x.name}, {"task", x.task}, {"category", x.category}});
    if (r.experts_sent.count(name)) continue;
    in_blob.push_back({{"name", x.name}, {"values", x.p.size()}});
    blob.insert(blob.end(), x.p.begin(), x.p.end());
    r.experts_sent.insert(name);
  }
  e.body["experts"] = list;
  e.body["blob_experts"] = in_blob;
  if (!blob.empty()) e.set_blob_floats(blob);
}

void Engine::Impl::publish(double now) {
  json rank_list = json::array();
  for (const auto& [rank, r] : ranks)
    rank_list.push_back({{"rank", rank}, {"pid", r.pid}, {"host", r.host}, {"alive", r.alive},
                         {"tokens_per_s", r.tokens_per_s}, {"tokens", r.tokens},
                         {"last_seen_s", std::max(0.0, now - r.last_seen)}});
  std::unordered_map<store::JobId, json> snapshot;
  int64_t depth = int64_t(waiting.size());
  double capacity = std::max(1e-9, planner.ranks().capacity());
  for (const auto& [id, job] : jobs) {
    if (job.ephemeral) continue;
    json p;
    const auto sched = job.in_planner ? planner.progress(id) : std::nullopt;
    if (sched) depth += int64_t(sched->waiting);
    if (job.type == store::JobType::train) {
      p = {{"unit", "steps"}, {"total", job.prep.train.steps}, {"done", job.steps_done},
           {"running", job.step ? 1 : 0}, {"reward_baseline", job.baseline}};
    } else {
      int64_t partial = 0;
      for (const auto& [pl, n] : job.partial) partial += n;
      p = {{"unit", "requests"}, {"total", job.prep.items.size()},
           {"done", int64_t(job.done_count) + partial}};
      if (sched)
        p["shards"] = {{"total", sched->shards}, {"done", sched->done},
                       {"running", sched->running}, {"waiting", sched->waiting}};
      if (sched) p["eta_s"] = sched->remaining_seconds / capacity;
      if (!job.per_task.empty()) {
        int64_t n = 0, c = 0;
        for (const auto& [t, nc] : job.per_task) n += nc.first, c += nc.second;
        p["accuracy_so_far"] = n ? double(c) / double(n) : 0.0;
      }
    }
    p["fraction"] = p["total"].get<double>() > 0
                        ? std::min(1.0, p["done"].get<double>() / p["total"].get<double>())
                        : 0.0;
    p["phase"] = job.in_planner ? "running" : (workers_ready ? "starting" : "waiting for workers");
    snapshot.emplace(store::JobId(id), std::move(p));
  }
  std::lock_guard lock(mutex);
  rank_snapshot = std::move(rank_list);
  progress = std::move(snapshot);
  queue_depth = depth;
}

}  // namespace t2::coordinator
