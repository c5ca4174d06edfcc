// A training step slice on a worker (see train_step.h). The trainer is kept
// between steps of the same job, so its buffers are allocated once.
#include "worker/train_step.h"

#include <fmt/format.h>

#include <chrono>

#include "adaptation/adam.h"
#include "adaptation/trainer.h"
#include "backbone/expert.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::worker {

using nlohmann::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Statistics appended to the gradient, so one all-reduce sums them all.
enum Stat { kSamples, kCorrect, kTokens, kRewardSum, kTrained, kStats };

}  // namespace

StepOutcome run_train_step(Context& ctx, const json& body, const std::vector<float>& state) {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t job = body.at("job").get<uint64_t>();
  const uint32_t step = body.at("step").get<uint32_t>();
  const std::string task_name = body.at("task").get<std::string>();
  const int64_t n = ctx.svf().total_rank();

  // The expert state every member starts the step from.
  std::vector<float> p, m, v;
  int64_t adam_t = body.value("adam_t", int64_t(0));
  if (body.value("has_state", false)) {
    if (int64_t(state.size()) != 3 * n)
      fail("step {} of job {}: state has {} values, expected {}", step, job, state.size(), 3 * n);
    p.assign(state.begin(), state.begin() + n);
    m.assign(state.begin() + n, state.begin() + 2 * n);
    v.assign(state.begin() + 2 * n, state.end());
  } else {
    // The same seed on every member: the same fresh expert everywhere.
    p = backbone::expert_init(ctx.svf(), body.value("expert", std::string("expert")), task_name,
                              body.value("seed", uint64_t(0)))
            .p;
    m.assign(size_t(n), 0.0f);
    v.assign(size_t(n), 0.0f);
    adam_t = 0;
  }

  // Rollouts and the summed gradient of this rank's prompts.
  const adaptation::Task& task = ctx.task(task_name);
  const auto& all = ctx.examples(task_name, adaptation::Split::kTrain);
  std::vector<adaptation::Example> examples;
  for (const auto& index : body.at("examples")) {
    const auto i = index.get<size_t>();
    if (i >= all.size()) fail("task {} has no training example {}", task_name, i);
    examples.push_back(all[i]);
  }
  adaptation::PolicyConfig policy;
  policy.samples_per_prompt = body.value("samples_per_prompt", 1);
  policy.temperature = float(body.value("temperature", 0.0));
  policy.group_baseline = policy.samples_per_prompt > 1;
  policy.kl_coef = body.value("kl", 0.0);
  policy.max_new_tokens = body.value("max_tokens", 0);
  adaptation::Trainer& trainer = ctx.trainer(job, task, policy);
  const uint64_t seed = body.value("seed", uint64_t(0)) * 1000003u + step;
  adaptation::PolicyGradient g = trainer.compute(examples, p, seed);

  // Sum gradient and counts over the group: every member gets the same totals.
  std::vector<float> buffer = g.grad;
  buffer.resize(size_t(n) + kStats);
  buffer[size_t(n) + kSamples] = float(g.samples);
  buffer[size_t(n) + kCorrect] = float(g.correct);
  buffer[size_t(n) + kTokens] = float(g.tokens);
  buffer[size_t(n) + kRewardSum] = float(g.reward_sum);
  buffer[size_t(n) + kTrained] = float(g.trained);
  std::vector<int> group = body.at("group").get<std::vector<int>>();
  auto reduced = ctx.channel().allreduce_sum(body.at("comm_key").get<uint64_t>(), group,
                                             std::move(buffer));
  comm::AllreduceResult sum = reduced.get();  // throws when aborted

  // The same optimizer step on every member.
  const int64_t total_samples = int64_t(sum.sum[size_t(n) + kSamples] + 0.5f);
  std::vector<float> grad(sum.sum.begin(), sum.sum.begin() + n);
  adaptation::AdamOptions options;
  options.lr = body.value("learning_rate", 2e-3);
  adaptation::Adam adam(n, options);
  adam.restore(std::move(m), std::move(v), adam_t);
  const double norm = adaptation::apply_gradient(grad, std::max<int64_t>(1, total_samples),
                                                 body.value("clip", 1e-3), adam, p);

  StepOutcome out;
  out.state = p;
  out.state.insert(out.state.end(), adam.m().begin(), adam.m().end());
  out.state.insert(out.state.end(), adam.v().begin(), adam.v().end());
  out.body = {{"placement", body.at("placement")},
              {"step", step},
              {"n", g.samples},
              {"correct", g.correct},
              {"reward_sum", g.reward_sum},
              {"output_tokens", g.tokens},
              {"trained", g.trained},
              {"group_samples", total_samples},
              {"grad_norm", norm},
              {"adam_t", adam.steps()},
              {"rollout_seconds", g.rollout_seconds},
              {"gradient_seconds", g.gradient_seconds},
              {"allreduce_seconds", sum.seconds},
              {"seconds", seconds_since(t0)}};
  return out;
}

}  // namespace t2::worker
