// Start-up of the engine: the expert registry read from the store, expert files
// named in the config checked by a worker and registered, and every job the
// store holds as queued or running taken up again — inference jobs without the
// items their "shard" events already hold, training jobs from their newest
// checkpoint — with the request ids that already have decision rows.
#include "coordinator/engine_impl.h"

#include <fmt/format.h>

#include "t2/error.h"

namespace t2::coordinator {

using nlohmann::json;

void Engine::Impl::load_experts() {
  for (const store::Expert& listed : store.list_experts()) {
    const auto x = store.get_expert(listed.name);
    if (!x) continue;
    if (x->file_path) {
      // LIMITATION: experts stored as file paths are not sent to workers (only
      // inline vectors are); reading the file here and sending its p would lift it.
      log->warn("expert '{}' is stored as a file ({}); only inline experts are served",
                x->name, *x->file_path);
      continue;
    }
    ExpertEntry e{x->name, x->task, "", x->base_model_hash, x->matrix_set,
                  bytes_floats(x->vector)};
    try {
      e.category = tasks.task(x->task)->category();
    } catch (const Error&) {
      e.category = "other";  // a task this service does not enable
    }
    std::lock_guard lock(mutex);
    experts_by_name[e.name] = std::move(e);
  }
  log->info("{} expert(s) in the registry", experts_by_name.size());
}

void Engine::Impl::register_expert_files() {
  int checker = -1;
  for (const auto& [r, info] : ranks)
    if (info.alive) {
      checker = r;
      break;
    }
  for (const auto& f : config.experts) {
    {
      std::lock_guard lock(mutex);
      if (experts_by_name.count(f.name)) continue;
    }
    if (checker < 0) break;
    // The worker has the model and SVD factors to check the file against.
    channel.post(checker, comm::Envelope{comm::Kind::kExpertCheck,
                                         {{"name", f.name}, {"file", f.file}}, {}});
  }
}

void Engine::Impl::on_expert_data(const comm::Envelope& e) {
  const json& b = e.body;
  const std::string name = b.value("name", std::string());
  if (!b.value("ok", false)) {
    log->error("expert file for '{}' refused: {}", name, b.value("error", std::string("?")));
    return;
  }
  store::Expert x;
  x.name = name;
  x.task = b.value("task", std::string());
  x.base_model_hash = b.value("base_model_sha256", std::string());
  x.matrix_set = b.value("matrix_set", std::string());
  const std::vector<float> p = e.blob_floats();
  x.vector = float_bytes(p);
  if (b.contains("validation_accuracy")) x.validation_accuracy = b["validation_accuracy"].get<double>();
  try {
    store.register_expert(x);
  } catch (const Error& err) {
    log->warn("expert '{}' not registered: {}", name, err.what());
    return;
  }
  ExpertEntry entry{x.name, x.task, "other", x.base_model_hash, x.matrix_set, p};
  try {
    entry.category = tasks.task(x.task)->category();
  } catch (const Error&) {
  }
  log->info("expert '{}' (task {}) registered from {}", name, x.task, b.value("file", ""));
  std::lock_guard lock(mutex);
  experts_by_name[name] = std::move(entry);
}

void Engine::Impl::resume_jobs(double now) {
  (void)now;
  SpecContext ctx;
  ctx.tasks = &tasks;
  ctx.default_checkpoint_every = config.checkpoint_every;
  for (const store::Job& stored : store.unfinished_jobs()) {
    LiveJob job;
    job.id = SchedJobId(stored.id);
    job.type = stored.type;
    job.priority = stored.priority;
    try {
      // Training names its own future expert, which a crash after registering
      // may have left behind: do not refuse the job for it.
      ctx.expert_exists = stored.type == store::JobType::train
                              ? std::function<bool(const std::string&)>()
                              : [this](const std::string& n) {
                                  std::lock_guard lock(mutex);
                                  return experts_by_name.count(n) > 0;
                                };
      job.prep = prepare_job(stored.type, stored.spec, ctx);
    } catch (const std::exception& e) {
      const std::string error = fmt::format("cannot resume: {}", e.what());
      log->error("job {}: {}", stored.id, error);
      store.update_job_state(stored.id, store::JobState::failed, error);
      count_state(std::string(store::to_string(stored.state)), "failed");
      continue;
    }
    job.done.assign(job.prep.items.size(), 0);

    if (job.type == store::JobType::train) {
      if (const auto c = store.latest_checkpoint(stored.id)) {
        const std::vector<float> p = bytes_floats(c->parameters);
        const std::vector<float> opt = bytes_floats(c->optimizer);
        if (opt.size() != 2 + 2 * p.size()) {
          store.update_job_state(stored.id, store::JobState::failed,
                                 "cannot resume: checkpoint is malformed");
          count_state(std::string(store::to_string(stored.state)), "failed");
          continue;
        }
        job.adam_t = int64_t(opt[0]);
        job.baseline = opt[1];
        job.state = p;
        job.state.insert(job.state.end(), opt.begin() + 2, opt.end());
        job.step_base = job.steps_done = job.checkpointed = uint32_t(c->step);
      }
    } else {
      // Items already answered, from the job's own events.
      int64_t after = 0;
      for (;;) {
        const auto events = store.job_events(stored.id, after, 1000);
        if (events.empty()) break;
        for (const auto& ev : events) {
          after = ev.seq;
          if (ev.kind != "shard") continue;
          for (const auto& item : ev.payload.value("items", json::array())) {
            const uint32_t i = item.value("i", uint32_t(0));
            if (i >= job.done.size() || job.done[i]) continue;
            job.done[i] = 1;
            ++job.done_count;
            job.tokens += item.value("completion_tokens", int64_t(0));
            if (item.contains("correct")) {
              auto& [n, correct] = job.per_task[job.prep.items[i].task];
              ++n;
              correct += item["correct"].get<bool>() ? 1 : 0;
            }
          }
        }
      }
      // Requests whose decision row exists (written just before a crash that
      // lost their "shard" event) are run again but not recorded twice.
      store::DecisionFilter filter;
      filter.job = stored.id;
      filter.kind = store::DecisionKind::request;
      store.audit().for_each(filter, store::Order::oldest_first, [&](const store::Decision& d) {
        if (d.request_id) job.decided.insert(*d.request_id);
      });
    }
    store.append_event(stored.id, "resumed",
                       {{"attempt", stored.attempts + 1}, {"items_done", job.done_count},
                        {"step", job.steps_done}, {"decisions", job.decided.size()}});
    log->info("job {} ({}) resumed: {}", stored.id, store::to_string(stored.type),
              job.type == store::JobType::train
                  ? fmt::format("from checkpoint step {}", job.steps_done)
                  : fmt::format("{} of {} requests already done", job.done_count,
                                job.prep.items.size()));
    waiting.push_back(job.id);
    jobs.emplace(job.id, std::move(job));
  }
}

}  // namespace t2::coordinator
