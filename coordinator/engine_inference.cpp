// Inference jobs in the engine: evaluate, generate and synchronous requests.
// A placement becomes a shard message with its items; the result writes one
// decision row per request (unless its request id has one already), then the
// shard's outputs as one "shard" event, so a resumed job skips those items.
#include "coordinator/engine_impl.h"

#include <fmt/format.h>

#include <algorithm>

#include "adaptation/evaluate.h"
#include "t2/error.h"

namespace t2::coordinator {

using nlohmann::json;

scheduler::Job Engine::Impl::scheduler_job(LiveJob& job) const {
  scheduler::Job j;
  j.id = job.id;
  j.priority = job.priority;
  j.task = job.prep.label;
  j.strategy = strategy_of(job.prep.model);
  j.two_pass = job.prep.model == kModelAuto;
  j.path = job.prep.model == kModelBase ? scheduler::Path::kDense : scheduler::Path::kFactored;
  int max_tokens = job.prep.max_tokens;
  if (max_tokens <= 0) {  // evaluate: each task's own budget
    for (const auto& item : job.prep.items)
      if (!item.task.empty()) max_tokens = std::max(max_tokens, tasks.task(item.task)->max_new_tokens());
  }
  j.max_new_tokens = uint32_t(std::max(1, max_tokens));
  if (job.type == store::JobType::train) {
    j.kind = scheduler::JobKind::kTraining;
    j.steps = job.prep.train.steps - job.step_base;
    j.prompts_per_step = job.prep.train.prompts_per_step;
    uint64_t sum = 0;
    const auto& examples = tasks.examples(job.prep.train.task, adaptation::Split::kTrain);
    const size_t sample = std::min<size_t>(64, job.pool.size());
    for (size_t k = 0; k < sample; ++k) {
      size_t bytes = 0;
      for (const auto& m : examples[job.pool[k]].messages) bytes += m.content.size();
      sum += estimate_tokens(bytes);
    }
    j.mean_prompt_tokens = uint32_t(sample ? sum / sample : 64);
    return j;
  }
  // LIMITATION: a job over several tasks is one scheduler job labelled "mixed",
  // so output length is learned for the mix, not for each task in it; giving
  // the planner a task per prompt (and shards of one task) would lift it.
  j.kind = scheduler::JobKind::kInference;
  if (job.type == store::JobType::fewshot) {
    uint32_t tokens = 0;
    for (const auto& item : job.prep.items) tokens += item.est_tokens;
    j.prompt_tokens = {tokens};
    return j;
  }
  for (uint32_t i : job.remaining) j.prompt_tokens.push_back(job.prep.items[i].est_tokens);
  return j;
}

namespace {

json item_json(const Item& item, uint32_t index) {
  json j = {{"i", index}};
  if (!item.messages.is_null()) j["messages"] = item.messages;
  else if (!item.prompt.empty()) j["prompt"] = item.prompt;
  if (item.example >= 0) {
    j["task"] = item.task;
    j["split"] = item.split;
    j["example"] = item.example;
  }
  return j;
}

}  // namespace

void Engine::Impl::send_shard(const scheduler::Placement& p, LiveJob& job, double now) {
  const auto prompts = planner.shard_prompts(p.job, p.shard);
  PlacementInfo info;
  info.id = p.id;
  info.job = job.id;
  info.shard = p.shard;
  info.rank = p.rank;
  info.sent_at = now;
  json items = json::array();
  uint64_t prompt_tokens = 0;  // as the planner counted them
  if (job.type == store::JobType::fewshot) {  // the shots, all together
    for (uint32_t i = 0; i < job.prep.items.size(); ++i) {
      items.push_back(item_json(job.prep.items[i], i));
      prompt_tokens += job.prep.items[i].est_tokens;
    }
  } else {
    for (uint32_t k : prompts) {
      const uint32_t index = job.remaining.at(k);
      info.items.push_back(index);
      items.push_back(item_json(job.prep.items[index], index));
      prompt_tokens += job.prep.items[index].est_tokens;
    }
  }
  comm::Envelope e;
  e.kind = comm::Kind::kShard;
  e.body = {{"placement", p.id},
            {"job", job.ephemeral ? 0 : int64_t(job.id)},
            {"items", items},
            {"model", job.prep.model},
            {"max_tokens", job.prep.max_tokens},
            {"temperature", job.prep.temperature},
            {"seed", job.prep.seed},
            {"chat", job.prep.chat},
            {"fewshot", job.type == store::JobType::fewshot}};
  if (job.type == store::JobType::fewshot) {
    const auto& f = job.prep.fewshot;
    e.body["cem"] = {{"population", f.population}, {"generations", f.generations},
                     {"elites", f.elites}, {"seed", f.seed}};
    e.body["max_tokens"] = f.max_tokens;
  }
  std::vector<std::string> names = candidate_experts(job);
  if (job.type == store::JobType::fewshot) {
    names = job.prep.fewshot.experts.empty() ? names : job.prep.fewshot.experts;
    if (names.empty()) fail("no experts of this model to mix; train some first");
  }
  attach_experts(e, p.rank, names);
  channel.post(p.rank, std::move(e));
  info.decision = record_placement(p, job, prompt_tokens);
  placements.emplace(p.id, std::move(info));
  log->debug("job {} shard {} ({} requests) -> rank {} (placement {}, est {:.2f} s)", job.id,
             p.shard, prompts.size(), p.rank, p.id, p.estimated_seconds);
}

void Engine::Impl::on_progress(const json& body) {
  const PlacementId id = body.value("placement", PlacementId(0));
  auto it = placements.find(id);
  if (it == placements.end()) return;
  auto job = jobs.find(it->second.job);
  if (job != jobs.end()) job->second.partial[id] = body.value("done", int64_t(0));
}

void Engine::Impl::on_shard_result(PlacementInfo& placed, const comm::Envelope& e, double now) {
  const PlacementInfo info = placed;
  placements.erase(info.id);
  const json& body = e.body;
  const double seconds = body.value("seconds", 0.0);
  const int64_t out_tokens = body.value("output_tokens", int64_t(0));

  RankInfo& r = ranks[info.rank];
  r.tokens += out_tokens;
  if (seconds > 0) {
    const double rate = double(out_tokens) / seconds;
    r.tokens_per_s = r.tokens_per_s > 0 ? 0.7 * r.tokens_per_s + 0.3 * rate : rate;
  }
  store::DecisionOutcome outcome;
  outcome.measured_cost = seconds;
  store.complete_decision(info.decision, outcome);

  scheduler::ShardResult result;
  result.placement = info.id;
  result.measured.seconds = std::max(1e-3, seconds);
  result.measured.output_tokens = uint64_t(out_tokens);
  const auto completion = planner.finish(result, now);
  if (!completion) return;  // a cancelled job or a losing duplicate
  learned(info.job, *completion, now);
  handle_aborts(completion->aborts, "duplicate finished first");

  auto found = jobs.find(info.job);
  if (found == jobs.end()) return;
  LiveJob& job = found->second;
  job.partial.erase(info.id);

  if (job.type == store::JobType::fewshot) {
    store.append_event(store::JobId(job.id), "result", body.value("fewshot", json::object()));
    finish_inference(job, now);
    return;
  }

  json kept = json::array();
  for (json item : body.value("items", json::array())) {
    const uint32_t index = item.value("i", uint32_t(0));
    if (index >= job.prep.items.size() || job.done[index]) continue;
    job.done[index] = 1;
    ++job.done_count;
    job.tokens += item.value("completion_tokens", int64_t(0));
    const Item& source = job.prep.items[index];
    if (item.contains("correct")) {
      auto& [n, correct] = job.per_task[source.task];
      ++n;
      correct += item["correct"].get<bool>() ? 1 : 0;
    }

    // One decision row per request; its id is deterministic, so a resumed job
    // that runs an item again does not write a second row.
    const json decision = item.value("decision", json::object());
    const std::string rid = job.ephemeral
                                ? fmt::format("{}-{}", job.prep.spec.value("request_id", ""), index)
                                : request_id(store::JobId(job.id), index);
    if (!job.decided.count(rid)) {
      store::NewDecision d;
      d.kind = store::DecisionKind::request;
      if (!job.ephemeral) d.job = store::JobId(job.id);
      d.request_id = rid;
      if (!source.task.empty()) d.task = source.task;
      else if (job.prep.label != "generate") d.task = job.prep.label;
      d.strategy = decision.value("strategy", strategy_of(job.prep.model));
      d.first_pass = decision.value("first_pass", json());
      for (const auto& x : decision.value("experts", json::array()))
        d.experts.push_back({x.value("name", std::string()), x.value("weight", 1.0)});
      d.rank = info.rank;
      d.estimated_cost = 0;
      if (decision.contains("first_pass_ms")) d.first_pass_ms = decision["first_pass_ms"].get<double>();
      if (decision.contains("second_pass_ms")) d.second_pass_ms = decision["second_pass_ms"].get<double>();
      d.measured_cost = decision.value("second_pass_ms", 0.0) / 1000.0 +
                        decision.value("first_pass_ms", 0.0) / 1000.0;
      d.depth = decision.value("depth", 0) > 0 ? std::optional<int>(decision["depth"].get<int>())
                                                : std::nullopt;
      if (!source.prompt.empty()) {
        d.prompt = source.prompt;
      } else if (!source.messages.is_null() && !source.messages.empty()) {
        d.prompt = source.messages.back().value("content", std::string());
      } else if (source.example >= 0) {
        const auto& ex = tasks.examples(source.task, adaptation::parse_split(source.split));
        if (size_t(source.example) < ex.size() && !ex[size_t(source.example)].messages.empty())
          d.prompt = ex[size_t(source.example)].messages.back().content;
      }
      const store::DecisionId id = store.record_decision(d);
      job.decided.insert(rid);
      count_decision("request", d.strategy);
      item["decision_id"] = id;
    }
    if (job.ephemeral) job.outputs[index] = item;
    kept.push_back(std::move(item));
  }
  if (!job.ephemeral && !kept.empty())
    store.append_event(store::JobId(job.id), "shard",
                       {{"placement", info.id}, {"rank", info.rank}, {"seconds", seconds},
                        {"output_tokens", out_tokens}, {"items", kept}});
  if (completion->job_finished) finish_inference(job, now);
}

void Engine::Impl::finish_inference(LiveJob& job, double now) {
  const SchedJobId id = job.id;
  if (job.ephemeral) {
    // The reply hands out decision ids; a client may read them at once, so the
    // queued rows (and whatever was queued before them) commit first.
    store.flush();
    if (job.reply) job.reply({{"results", job.outputs}});
    forget(id);
    return;
  }
  json result;
  const double seconds = job.started > 0 ? now - job.started : 0.0;
  if (job.type == store::JobType::evaluate) {
    int64_t n = 0, correct = 0;
    json per_task = json::object();
    for (const auto& [task, nc] : job.per_task) {
      n += nc.first;
      correct += nc.second;
      const auto ci = adaptation::wilson_interval(nc.second, nc.first);
      per_task[task] = {{"n", nc.first}, {"correct", nc.second},
                        {"accuracy", nc.first ? double(nc.second) / double(nc.first) : 0.0},
                        {"ci95", {ci.low, ci.high}}};
    }
    const auto ci = adaptation::wilson_interval(correct, n);
    result = {{"n", n}, {"correct", correct},
              {"accuracy", n ? double(correct) / double(n) : 0.0}, {"ci95", {ci.low, ci.high}},
              {"per_task", per_task}, {"model", job.prep.model}};
  } else if (job.type == store::JobType::generate) {
    result = {{"n", job.done_count}, {"model", job.prep.model}};
  }
  if (job.type != store::JobType::fewshot) {
    result["completion_tokens"] = job.tokens;
    result["seconds"] = seconds;
    result["cost_model"] = cost_summary(job);
    store.append_event(store::JobId(id), "result", result);
  }
  const auto stored = store.get_job(store::JobId(id));
  store.update_job_state(store::JobId(id), store::JobState::succeeded);
  count_state(stored ? std::string(store::to_string(stored->state)) : "running", "succeeded");
  log->info("job {} ({}) succeeded: {}", id, store::to_string(job.type), result.dump());
  log_cost(job);
  forget(id);
}

void Engine::Impl::submit_sync(Command& c, double now) {
  bool any_alive = false;
  for (const auto& [r, info] : ranks) any_alive = any_alive || info.alive;
  if (!any_alive || *draining) {
    c.sync_reply({{"error", {{"status", 503}, {"code", *draining ? "shutting_down" : "no_workers"},
                             {"message", *draining ? "the service is stopping"
                                                   : "no worker rank is up yet; retry shortly"}}}});
    return;
  }
  LiveJob job;
  job.id = next_ephemeral++;
  job.ephemeral = true;
  job.type = store::JobType::generate;
  job.priority = 100;  // interactive requests go before batch jobs
  job.prep.model = c.sync.model;
  job.prep.max_tokens = c.sync.max_tokens;
  job.prep.temperature = c.sync.temperature;
  job.prep.seed = c.sync.seed;
  job.prep.chat = c.sync.chat;
  job.prep.label = "generate";
  job.prep.spec = {{"request_id", c.sync.request_id}};
  for (const auto& p : c.sync.prompts)
    job.prep.items.push_back({p, {}, "", "", -1, estimate_tokens(p.size())});
  for (const auto& m : c.sync.messages)
    job.prep.items.push_back({"", m, "", "", -1, estimate_tokens(m.dump().size())});
  job.done.assign(job.prep.items.size(), 0);
  job.outputs.assign(job.prep.items.size(), json());
  job.reply = std::move(c.sync_reply);
  job.deadline = now + config.request_timeout_s;
  auto [it, fresh] = jobs.emplace(job.id, std::move(job));
  admit(it->second, now);
}

void Engine::Impl::expire_sync(double now) {
  std::vector<SchedJobId> late;
  for (const auto& [id, job] : jobs)
    if (job.ephemeral && job.deadline > 0 && now > job.deadline) late.push_back(id);
  for (SchedJobId id : late) {
    LiveJob& job = jobs.at(id);
    if (job.in_planner) handle_aborts(planner.cancel(id, now), "request timeout");
    if (job.reply)
      job.reply({{"error", {{"status", 504}, {"code", "timeout"},
                            {"message", fmt::format("no answer within {} s ([http] "
                                                    "request_timeout_s)",
                                                    config.request_timeout_s)}}}});
    forget(id);
  }
}

}  // namespace t2::coordinator
