// Training jobs in the engine. The planner gives a job a group of ranks and
// issues each step as one slice per member; every member gets the same
// expert state (p and Adam moments) with its slice, runs its rollouts, and the
// group all-reduces the gradient and takes the same optimizer step. The
// lowest rank of the group sends the new state back; rank 0 keeps it and
// stores a checkpoint every few steps, so nothing but rank 0 needs to survive.
#include "coordinator/engine_impl.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "t2/error.h"

namespace t2::coordinator {

using nlohmann::json;

namespace {

uint64_t group_key(SchedJobId job, const std::vector<int>& group) {
  uint64_t h = 1469598103934665603ull ^ job;  // FNV-1a over the job and its members
  for (int r : group) {
    h ^= uint64_t(r) + 0x9e3779b97f4a7c15ull;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

void Engine::Impl::prepare_training(LiveJob& job) {
  const TrainSettings& t = job.prep.train;
  const auto& examples = tasks.examples(t.task, adaptation::Split::kTrain);
  size_t n = examples.size();
  if (t.pool > 0) n = std::min<size_t>(n, size_t(t.pool));
  job.pool.resize(n);
  std::iota(job.pool.begin(), job.pool.end(), 0u);
  std::mt19937_64 rng(t.seed);
  std::shuffle(job.pool.begin(), job.pool.end(), rng);
  for (const auto& [r, info] : ranks)
    if (info.alive) {
      job.base_model_hash = info.model_sha256;
      job.matrix_set = info.matrix_set;
      job.total_rank = info.total_rank;
      break;
    }
  if (!job.state.empty() && int64_t(job.state.size()) != 3 * job.total_rank)
    fail("checkpoint of job {} holds {} values, this model needs {} (3 x {}): was the model "
         "or matrix set changed?", job.id, job.state.size(), 3 * job.total_rank,
         job.total_rank);
}

void Engine::Impl::send_step(std::vector<scheduler::Placement>& slices, LiveJob& job,
                             double now) {
  std::sort(slices.begin(), slices.end(),
            [](const auto& a, const auto& b) { return a.rank < b.rank; });
  const TrainSettings& t = job.prep.train;
  StepRun run;
  run.step = job.step_base + slices.front().step;
  for (const auto& p : slices) run.group.push_back(p.rank);
  run.leader = run.group.front();
  run.comm_key = group_key(job.id, run.group);
  run.started = now;

  uint32_t total = 0;
  for (const auto& p : slices) total += p.requests;
  size_t next = size_t(run.step) * t.prompts_per_step;
  for (const auto& p : slices) {
    json examples = json::array();
    for (uint32_t k = 0; k < p.requests; ++k) examples.push_back(job.pool[next++ % job.pool.size()]);
    comm::Envelope e;
    e.kind = comm::Kind::kTrainStep;
    e.body = {{"placement", p.id},        {"job", job.id},
              {"step", run.step},         {"group", run.group},
              {"leader", run.leader},     {"comm_key", run.comm_key},
              {"task", t.task},           {"expert", t.expert},
              {"examples", examples},     {"prompts_total", total},
              {"max_tokens", t.max_tokens}, {"temperature", t.temperature},
              {"seed", t.seed},           {"learning_rate", t.learning_rate},
              {"clip", t.clip},           {"kl", t.kl},
              {"samples_per_prompt", t.samples_per_prompt},
              {"adam_t", job.adam_t},     {"has_state", !job.state.empty()}};
    if (!job.state.empty()) e.set_blob_floats(job.state);
    channel.post(p.rank, std::move(e));

    PlacementInfo info;
    info.id = p.id;
    info.job = job.id;
    info.shard = p.shard;
    info.rank = p.rank;
    info.sent_at = now;
    info.train = true;
    info.comm_key = run.comm_key;
    // LIMITATION: a training slice's row carries no prompt tokens (the planner
    // sizes it by the job's mean prompt); sending the sampled prompts' own
    // token counts with the slice would lift it.
    info.decision = record_placement(p, job, 0);
    placements.emplace(p.id, std::move(info));
    run.outstanding.insert(p.id);
  }
  log->info("job {} step {}/{}: {} prompts on ranks {}", job.id, run.step + 1, t.steps, total,
            fmt::join(run.group, ","));
  job.step = std::move(run);
}

void Engine::Impl::on_step_result(PlacementInfo& placed, const comm::Envelope& e, double now) {
  const PlacementInfo info = placed;
  placements.erase(info.id);
  const json& body = e.body;
  const double seconds = body.value("seconds", 0.0);
  store::DecisionOutcome outcome;
  outcome.measured_cost = seconds;
  store.complete_decision(info.decision, outcome);

  scheduler::ShardResult result;
  result.placement = info.id;
  result.measured.seconds = std::max(1e-3, seconds);
  result.measured.output_tokens = body.value("output_tokens", uint64_t(0));
  const auto completion = planner.finish(result, now);
  if (!completion) return;
  learned(info.job, *completion, now);

  auto found = jobs.find(info.job);
  if (found == jobs.end()) return;
  LiveJob& job = found->second;
  if (!job.step || !job.step->outstanding.count(info.id)) return;
  StepRun& run = *job.step;
  run.reward_sum += body.value("reward_sum", 0.0);
  run.n += body.value("n", 0.0);
  run.correct += body.value("correct", 0.0);
  run.tokens += body.value("output_tokens", int64_t(0));
  run.slowest = std::max(run.slowest, seconds);
  // The member that arrived last waited least: its time is the all-reduce itself.
  const double reduce = body.value("allreduce_seconds", 0.0);
  run.allreduce = run.outstanding.size() == run.group.size() ? reduce
                                                            : std::min(run.allreduce, reduce);
  RankInfo& r = ranks[info.rank];
  r.tokens += body.value("output_tokens", int64_t(0));
  const double rollout = body.value("rollout_seconds", 0.0);
  if (rollout > 0) {
    const double rate = body.value("output_tokens", 0.0) / rollout;
    r.tokens_per_s = r.tokens_per_s > 0 ? 0.7 * r.tokens_per_s + 0.3 * rate : rate;
  }
  if (info.rank == run.leader) {
    run.state = e.blob_floats();
    run.adam_t = body.value("adam_t", int64_t(0));
  }
  run.outstanding.erase(info.id);
  if (run.outstanding.empty()) finish_step(job, now, completion->job_finished);
}

void Engine::Impl::finish_step(LiveJob& job, double now, bool job_finished) {
  StepRun run = std::move(*job.step);
  job.step.reset();
  if (int64_t(run.state.size()) != 3 * job.total_rank) {
    fail_job(job, fmt::format("step {}: the group leader (rank {}) sent {} state values, "
                              "expected {}", run.step, run.leader, run.state.size(),
                              3 * job.total_rank));
    return;
  }
  job.state = std::move(run.state);
  job.adam_t = run.adam_t;
  job.steps_done = run.step + 1;
  const double reward = run.n > 0 ? run.reward_sum / run.n : 0.0;
  const double accuracy = run.n > 0 ? run.correct / run.n : 0.0;
  job.baseline = job.steps_done == 1 ? reward : 0.5 * job.baseline + 0.5 * reward;
  const double wall = std::max(1e-9, now - run.started);
  const double tokens_per_s = double(run.tokens) / std::max(1e-9, run.slowest);
  const double share = run.slowest > 0 ? run.allreduce / run.slowest : 0.0;
  {
    std::lock_guard lock(mutex);
    train_tokens_per_s = tokens_per_s;
    allreduce_share = share;
  }
  const store::JobId id = store::JobId(job.id);
  store.append_event(id, "step", {{"step", job.steps_done}, {"steps", job.prep.train.steps},
                                  {"reward", reward}, {"accuracy", accuracy},
                                  {"rollout_tokens", run.tokens}, {"seconds", wall},
                                  {"tokens_per_s", tokens_per_s},
                                  {"allreduce_seconds", run.allreduce},
                                  {"allreduce_share", share}, {"ranks", run.group}});
  store.record_metric(id, "reward", job.steps_done, reward);
  store.record_metric(id, "accuracy", job.steps_done, accuracy);
  store.record_metric(id, "rollout_tokens_per_s", job.steps_done, tokens_per_s);
  store.record_metric(id, "allreduce_share", job.steps_done, share);
  log->info("job {} step {}/{}: reward {:+.3f}, accuracy {:.2f}, {} tokens, {:.1f} s, "
            "{:.0f} tok/s, all-reduce {:.1f} %", job.id, job.steps_done,
            job.prep.train.steps, reward, accuracy, run.tokens, wall, tokens_per_s,
            100 * share);
  if (job_finished || *draining || job.steps_done % uint32_t(job.prep.train.checkpoint_every) == 0)
    checkpoint(job);
  if (job_finished) finish_training(job);
}

void Engine::Impl::checkpoint(LiveJob& job) {
  const size_t n = size_t(job.total_rank);
  store::Checkpoint c;
  c.job = store::JobId(job.id);
  c.step = job.steps_done;
  c.parameters = float_bytes(std::vector<float>(job.state.begin(), job.state.begin() + long(n)));
  // Optimizer: Adam's step count and the reward baseline, then m and v.
  std::vector<float> opt = {float(job.adam_t), float(job.baseline)};
  opt.insert(opt.end(), job.state.begin() + long(n), job.state.end());
  c.optimizer = float_bytes(opt);
  store.save_checkpoint(c);
  job.checkpointed = job.steps_done;
  store.append_event(c.job, "checkpoint", {{"step", c.step}});
  log->info("job {}: checkpoint at step {}", job.id, c.step);
}

void Engine::Impl::checkpoint_all() {
  for (auto& [id, job] : jobs)
    if (job.type == store::JobType::train && job.steps_done > job.checkpointed &&
        !job.state.empty())
      checkpoint(job);
}

void Engine::Impl::finish_training(LiveJob& job) {
  const TrainSettings& t = job.prep.train;
  const store::JobId id = store::JobId(job.id);
  store::Expert x;
  x.name = t.expert;
  x.task = t.task;
  x.base_model_hash = job.base_model_hash;
  x.matrix_set = job.matrix_set;
  std::vector<float> p(job.state.begin(), job.state.begin() + long(job.total_rank));
  x.vector = float_bytes(p);
  x.source_job = id;
  try {
    store.register_expert(x);
  } catch (const Error& e) {
    // A restart between registering and finishing finds its own expert there.
    const auto existing = store.get_expert(t.expert);
    if (!existing || existing->source_job != id) {
      fail_job(job, e.what());
      return;
    }
  }
  {
    std::lock_guard lock(mutex);
    ExpertEntry entry{x.name, x.task, "", x.base_model_hash, x.matrix_set, p};
    try {
      entry.category = tasks.task(x.task)->category();
    } catch (const Error&) {
    }
    experts_by_name[x.name] = std::move(entry);
  }
  store.append_event(id, "result", {{"expert", t.expert}, {"steps", job.steps_done},
                                    {"reward_baseline", job.baseline},
                                    {"cost_model", cost_summary(job)}});
  log_cost(job);
  const auto stored = store.get_job(id);
  store.update_job_state(id, store::JobState::succeeded);
  count_state(stored ? std::string(store::to_string(stored->state)) : "running", "succeeded");
  log->info("job {} succeeded: expert '{}' registered ({} values, task {})", id, t.expert,
            p.size(), t.task);
  forget(job.id);
}

}  // namespace t2::coordinator
