// The REINFORCE trainer on hand-checked numbers and a tiny model: Adam and
// clipping against steps computed by hand, the group-mean baseline, the policy
// loss gradient in p against central finite differences of the same loss (f64
// pass), batch drawing, checkpoint round trip, and a resumed run that ends with
// the same p, bit for bit, as an uninterrupted one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "adaptation/adam.h"
#include "adaptation/closed_answers.h"
#include "adaptation/train_checkpoint.h"
#include "adaptation/train_loop.h"
#include "adaptation/trainer.h"
#include "backbone/expert.h"
#include "backbone/model.h"
#include "backbone/svf.h"
#include "backbone/svf_hook.h"
#include "t2/error.h"
#include "tests/backbone/tiny_gguf.h"

namespace t2::adaptation {
namespace {

namespace bb = backbone;
namespace fs = std::filesystem;

std::string temp_dir() {
  const fs::path dir = fs::path(testing::TempDir()) / ("t2_trainer_" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir.string();
}

// ---- Adam and clipping by hand ----------------------------------------------------

TEST(Adam, TwoStepsByHand) {
  // lr 0.1, betas 0.9 / 0.999, eps 1e-8; p0 = (1, 1); g1 = (1, -2), g2 = (0.5, 0).
  // Step 1: m = 0.1 g, v = 0.001 g^2, bias-corrected m^ = g, v^ = g^2, so each p moves
  //   by lr * sign(g): p1 = (0.9, 1.1).
  // Step 2, coordinate 0: m = 0.09 + 0.05 = 0.14, v = 0.000999 + 0.00025 = 0.001249,
  //   m^ = 0.14 / 0.19 = 0.7368421, v^ = 0.001249 / 0.001999 = 0.6248124,
  //   p2 = 0.9 - 0.1 * 0.7368421 / 0.7904507 = 0.8067820.
  // Coordinate 1: m = -0.18, v = 0.003996, m^ = -0.9473684, v^ = 1.9989995,
  //   p2 = 1.1 + 0.1 * 0.9473684 / 1.4138598 = 1.1670059.
  Adam adam(2, {0.1, 0.9, 0.999, 1e-8, 0.0});
  std::vector<float> p = {1.0f, 1.0f};
  adam.step(p, std::vector<float>{1.0f, -2.0f});
  EXPECT_NEAR(p[0], 0.9, 1e-6);
  EXPECT_NEAR(p[1], 1.1, 1e-6);
  adam.step(p, std::vector<float>{0.5f, 0.0f});
  EXPECT_NEAR(p[0], 0.8067820, 2e-6);
  EXPECT_NEAR(p[1], 1.1670059, 2e-6);
  EXPECT_EQ(adam.steps(), 2);
  EXPECT_NEAR(adam.m()[0], 0.14, 1e-7);
  EXPECT_NEAR(adam.v()[1], 0.003996, 1e-9);
}

TEST(Adam, DecoupledWeightDecayAndLrOverride) {
  // AdamW: p <- p (1 - lr wd), then the Adam step; first step moves by lr * sign(g).
  Adam adam(1, {0.1, 0.9, 0.999, 1e-8, 0.5});
  std::vector<float> p = {2.0f};
  adam.step(p, std::vector<float>{3.0f});
  EXPECT_NEAR(p[0], 2.0 * (1 - 0.05) - 0.1, 1e-6);
  Adam plain(1, {0.1, 0.9, 0.999, 1e-8, 0.0});
  std::vector<float> q = {0.0f};
  plain.step(q, std::vector<float>{-1.0f}, 0.01);  // schedule's lr wins
  EXPECT_NEAR(q[0], 0.01, 1e-7);
}

TEST(Adam, RestoreRejectsWrongSizes) {
  Adam adam(3, {});
  EXPECT_THROW(adam.restore({1, 2}, {1, 2, 3}, 1), Error);
  std::vector<float> two(2);
  EXPECT_THROW(adam.step(two, std::vector<float>(3)), Error);
}

TEST(Clip, GlobalNormByHand) {
  std::vector<float> g = {3.0f, 4.0f};  // norm 5
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 1.0), 5.0);
  EXPECT_NEAR(g[0], 0.6, 1e-7);
  EXPECT_NEAR(g[1], 0.8, 1e-7);
  std::vector<float> h = {3.0f, 4.0f};
  EXPECT_DOUBLE_EQ(clip_grad_norm(h, 10.0), 5.0);  // under the limit: unchanged
  EXPECT_EQ(h[0], 3.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(h, 0.0), 5.0);   // 0: no clipping
  EXPECT_EQ(h[1], 4.0f);
}

TEST(Clip, ApplyGradientDividesClipsAndSteps) {
  // Sum over 4 samples (8, -6) -> mean (2, -1.5), norm 2.5, clipped to 1e-3: (8e-4, -6e-4).
  std::vector<float> grad = {8.0f, -6.0f}, p = {0.0f, 0.0f};
  Adam adam(2, {0.01, 0.9, 0.999, 1e-8, 0.0});
  EXPECT_NEAR(apply_gradient(grad, 4, 1e-3, adam, p), 2.5, 1e-12);
  EXPECT_NEAR(grad[0], 8e-4, 1e-9);
  EXPECT_NEAR(grad[1], -6e-4, 1e-9);
  EXPECT_NEAR(p[0], -0.01, 1e-6);  // first Adam step: lr * sign
  EXPECT_NEAR(p[1], 0.01, 1e-6);
  EXPECT_THROW(apply_gradient(grad, 0, 1.0, adam, p), Error);
}

// ---- advantages ---------------------------------------------------------------------

TEST(Advantages, GroupMeanBaselineByHand) {
  // Two prompts, K = 4: rewards (1, -1, -1, -1) have mean -0.5 -> (1.5, -0.5, -0.5, -0.5);
  // (1, 1, 1, 1) have mean 1 -> all 0 (no signal when every answer agrees).
  const std::vector<float> r = {1, -1, -1, -1, 1, 1, 1, 1};
  const auto a = advantages(r, 4, true);
  const std::vector<float> expect = {1.5f, -0.5f, -0.5f, -0.5f, 0, 0, 0, 0};
  for (size_t i = 0; i < r.size(); ++i) EXPECT_FLOAT_EQ(a[i], expect[i]) << i;
  EXPECT_EQ(advantages(r, 4, false), r);  // reference: A = r
  EXPECT_EQ(advantages(std::vector<float>{1, -1}, 2, true), (std::vector<float>{1, -1}));
  EXPECT_THROW(advantages(r, 3, true), Error);
}

// ---- a tiny model and task ------------------------------------------------------------

struct Tiny {
  std::shared_ptr<const bb::Model> model;
  std::shared_ptr<const bb::Svf> svf;
  std::unique_ptr<Task> task;
};

// A numeric task on a 12-line file: "a+b" questions, answer after "####".
const Tiny& tiny() {
  static Tiny t = [] {
    Tiny t;
    const std::string dir = temp_dir();
    test::TinyLlamaSpec spec;
    spec.n_ctx = 512;
    test::write_tiny_llama(dir + "/tiny.gguf", spec);
    t.model = bb::Model::load(dir + "/tiny.gguf");
    t.svf = bb::Svf::open(*t.model, bb::MatrixSet::kMlp, "");
    fs::create_directories(dir + "/sums");
    std::ofstream data(dir + "/sums/train.jsonl");
    for (int i = 0; i < 12; ++i) {
      data << "{\"question\": \"" << i % 5 << "+" << i % 3 << "\", \"answer\": \"#### "
           << i % 5 + i % 3 << "\"}\n";
    }
    data.close();
    const std::string toml = R"(name = "sums"
category = "math"
description = "tiny sums"
format = "gsm8k"
answer = "numeric"
max_new_tokens = 4
[data]
train = "sums/train.jsonl"
[prompt]
system = "S"
user = "{question}="
)";
    t.task = std::make_unique<Task>(Task::parse(toml, "sums.toml", dir));
    return t;
  }();
  return t;
}

// ---- policy-gradient loss vs finite differences -----------------------------------------

// A narrower model for the gradient checks: with n_embd 64 the tiny model's next-token
// distributions are nearly one-hot (the input token's own logit dominates), so the KL
// to the base model would be ~1e-6 and its gradient lost in f32 rounding.
const Tiny& soft() {
  static Tiny t = [] {
    Tiny t;
    test::TinyLlamaSpec spec;
    spec.n_embd = 16;
    spec.n_head = 2;
    spec.n_head_kv = 1;
    spec.n_ff = 48;
    spec.seed = 3;
    test::write_tiny_llama(temp_dir() + "/soft.gguf", spec);
    t.model = bb::Model::load(temp_dir() + "/soft.gguf");
    t.svf = bb::Svf::open(*t.model, bb::MatrixSet::kMlp, "");
    return t;
  }();
  return t;
}

std::vector<Rollout> hand_rollouts(int vocab) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> tok(3, vocab - 1);
  const std::vector<float> adv = {1.0f, -0.5f, 0.25f, 0.0f};
  std::vector<Rollout> out;
  for (size_t i = 0; i < adv.size(); ++i) {
    Rollout r;
    r.example = int64_t(i);
    for (int j = 0; j < 5 + int(i); ++j) r.prompt.push_back(tok(rng));
    for (int j = 0; j < 3 + int(i % 2); ++j) r.response.push_back(tok(rng));
    r.advantage = adv[i];
    r.reward = adv[i];
    out.push_back(r);
  }
  return out;
}

struct GradCase {
  double kl;
  bool kl_only;  // every advantage 0: the gradient is the KL term's alone
};
class PolicyGradientFd : public testing::TestWithParam<GradCase> {};

TEST_P(PolicyGradientFd, MatchesFiniteDifferencesOfTheLoss) {
  const Tiny& t = soft();
  const double kl = GetParam().kl;
  auto rollouts = hand_rollouts(t.model->config().n_vocab);
  if (GetParam().kl_only) {
    for (auto& r : rollouts) r.advantage = 0.0f;
  }
  std::vector<const Rollout*> all;
  for (const auto& r : rollouts) all.push_back(&r);

  // p spread out so z varies and the rescale matters.
  const int64_t R = t.svf->total_rank();
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::vector<float> p(static_cast<size_t>(R));
  for (float& v : p) v = 0.1f + 0.8f * normal(rng);

  // Analytic: the trainer's f32 gradient, and the f64 one of the same chunk.
  PolicyConfig config;
  config.kl_coef = kl;
  config.max_rows = 12;  // several chunks
  Trainer trainer(*t.model, t.svf, *tiny().task, config);
  const PolicyGradient g = trainer.gradient(rollouts, p);
  EXPECT_EQ(g.samples, 4);
  EXPECT_EQ(g.trained, kl > 0 ? 4 : 3);  // A = 0 without KL skips the backward
  if (GetParam().kl_only) {
    EXPECT_NEAR(g.loss_sum, kl * g.kl_sum, 1e-9);
  }

  const bb::SvfSlots slots = bb::SvfSlots::from(*t.svf, t.model->config().n_layer);
  bb::TrainForwardT<double> tf(*t.model, slots);
  auto z_of = [](const std::vector<double>& pd) {
    std::vector<double> z(pd.size());
    for (size_t i = 0; i < pd.size(); ++i) z[i] = 1.0 / (1.0 + std::exp(-pd[i]));
    return z;
  };
  std::vector<double> pd(p.begin(), p.end());
  std::vector<double> z = z_of(pd), dz;
  const LossTerms terms = policy_loss<double>(tf, all, z, kl, &dz);
  EXPECT_NEAR(g.loss_sum, terms.loss, 1e-4 * (1 + std::fabs(terms.loss)));
  if (kl > 0) {
    EXPECT_GT(terms.kl, 1e-3);
  }

  // Central differences in p of the f64 loss on coordinates of every slot.
  const double h = 1e-5;
  double max_abs = 0, max_rel64 = 0, max_rel32 = 0, scale = 0;
  for (int s = 0; s < t.svf->n_slots(); ++s) {
    for (int k : {0, 1, t.svf->factors(s).rank - 1}) {
      const size_t i = size_t(t.svf->offset(s) + k);
      auto loss_at = [&](double v) {
        std::vector<double> q = pd;
        q[i] = v;
        return policy_loss<double>(tf, all, z_of(q), kl, nullptr).loss;
      };
      const double fd = (loss_at(pd[i] + h) - loss_at(pd[i] - h)) / (2 * h);
      const double an64 = dz[i] * z[i] * (1 - z[i]);
      const double an32 = g.grad[i];
      scale = std::max(scale, std::fabs(fd));
      max_abs = std::max(max_abs, std::fabs(an64 - fd));
      max_rel64 = std::max(max_rel64, std::fabs(an64 - fd) / (std::fabs(fd) + 1e-6));
      max_rel32 = std::max(max_rel32, std::fabs(an32 - fd));
    }
  }
  max_rel32 /= scale;
  std::printf("kl %.2f%s: |dL/dp| up to %.3g; f64 vs FD max abs %.3g rel %.3g; f32 trainer vs FD "
              "max err / scale %.3g\n", kl, GetParam().kl_only ? " (alone)" : "", scale, max_abs, max_rel64, max_rel32);
  EXPECT_GT(scale, 1e-6);
  EXPECT_LT(max_rel64, 1e-5);
  EXPECT_LT(max_rel32, 2e-3);
}

INSTANTIATE_TEST_SUITE_P(Kl, PolicyGradientFd, testing::Values(GradCase{0.0, false}, GradCase{0.3, false},
                                                    GradCase{1.0, true}),
                         [](const auto& info) {
                           if (info.param.kl_only) return std::string("KlOnly");
                           return info.param.kl > 0 ? std::string("WithKl")
                                                    : std::string("NoKl");
                         });

TEST(Trainer, RolloutScoresAndSeedsPerSample) {
  const Tiny& t = tiny();
  PolicyConfig config;
  config.samples_per_prompt = 3;
  config.temperature = 1.0f;
  config.group_baseline = true;
  Trainer trainer(*t.model, t.svf, *t.task, config);
  const auto examples = t.task->examples(Split::kTrain);
  const std::vector<float> p(size_t(t.svf->total_rank()), 0.1f);
  const auto a = trainer.rollout(std::span(examples).first(2), p, 7);
  ASSERT_EQ(a.size(), 6u);
  for (size_t g = 0; g < 2; ++g) {
    double sum = 0;
    for (int k = 0; k < 3; ++k) {
      const Rollout& r = a[g * 3 + size_t(k)];
      EXPECT_EQ(r.example, int64_t(g));
      EXPECT_EQ(r.sample, k);
      EXPECT_FALSE(r.response.empty());
      EXPECT_LE(r.response.size(), 5u);  // 4 new tokens (+ stop)
      EXPECT_EQ(r.reward, r.correct ? 1.0f : -1.0f);
      sum += r.advantage;
    }
    EXPECT_NEAR(sum, 0.0, 1e-6);  // advantages of a group sum to 0
  }
  // The same example and seed give the same answers whatever else is in the batch.
  const auto b = trainer.rollout(std::span(examples).subspan(1, 1), p, 7);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(b[size_t(k)].response, a[3 + size_t(k)].response);

  PolicyConfig bad;
  bad.samples_per_prompt = 1;
  bad.group_baseline = true;
  EXPECT_THROW(Trainer(*t.model, t.svf, *t.task, bad), Error);
}

// ---- a closed answer set: the exact policy gradient --------------------------------------

// On a task whose answers are scored from a closed set, the trainer's step is the
// gradient of the expected reward under pi = softmax over the candidates'
// log-likelihoods. Reference: central finite differences of
// J(p) = sum_e sum_c pi_c(p) r_c, computed by plain scoring with the adapter of p.
TEST(Trainer, ClosedAnswerGradientIsTheExpectedRewardGradient) {
  const Tiny& t = soft();
  BuiltTaskSpec spec;
  spec.name = "pick";
  spec.category = "pick";
  spec.answer = AnswerKind::kBoxed;
  spec.labels = {"a", "b", "c"};
  spec.closed_completions = {"a}", "b}", "cc}"};
  spec.max_new_tokens = 4;
  for (const char* ref : {"a", "b", "cc", "a"}) {
    Example e;
    e.id = std::string("q") + ref + std::to_string(spec.train.size());
    e.messages = {{"user", std::string("pick ") + std::to_string(spec.train.size())}};
    e.answer_prefix = "\\boxed{";
    e.reference = ref;
    spec.train.push_back(e);
  }
  spec.validation = spec.train;
  const Task task = Task::from_examples(spec);
  PolicyConfig config;  // one sample, no baseline, no KL: the closed set needs none
  Trainer trainer(*t.model, t.svf, task, config);
  const auto examples = task.examples(Split::kTrain);

  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> p(size_t(t.svf->total_rank()));
  for (float& v : p) v = 1.0f + normal(rng);
  const auto rollouts = trainer.rollout(examples, p, 0);
  ASSERT_EQ(rollouts.size(), examples.size() * 3);
  const PolicyGradient g = trainer.gradient(rollouts, p);
  EXPECT_EQ(g.samples, int64_t(examples.size()));  // a prompt's candidates are one sample

  const auto& tok = t.model->tokenizer();
  std::vector<std::vector<int32_t>> prompts, closed;
  for (const auto& e : examples) prompts.push_back(prompt_ids(tok, e));
  for (const auto& c : spec.closed_completions) closed.push_back(tok.encode(c));
  auto expected_reward = [&](const std::vector<float>& q) {
    std::vector<float> z(q.size());
    for (size_t i = 0; i < q.size(); ++i) z[i] = sigmoid(q[i]);
    bb::SvfHook hook(*t.model, t.svf);
    hook.set_adapters(std::vector(prompts.size(), bb::Adapter::from_z(*t.svf, z, "fd")));
    const auto score = completion_logprobs(*t.model, &hook, prompts, closed);
    double j = 0.0;
    for (size_t e = 0; e < prompts.size(); ++e) {
      const auto pi = softmax(score[e]);
      for (size_t c = 0; c < closed.size(); ++c)
        j += pi[c] * task.score(examples[e], spec.closed_completions[c]).reward;
    }
    return j;
  };
  // Directional derivatives: along the gradient itself and along a random direction.
  double gnorm = 0.0;
  for (float v : g.grad) gnorm += double(v) * v;
  gnorm = std::sqrt(gnorm);
  ASSERT_GT(gnorm, 1e-6);
  std::vector<float> random_dir(p.size());
  for (float& v : random_dir) v = normal(rng);
  for (const bool along_gradient : {true, false}) {
    std::vector<float> d(p.size());
    double dnorm = 0.0;
    for (size_t i = 0; i < p.size(); ++i) {
      d[i] = along_gradient ? g.grad[i] : random_dir[i];
      dnorm += double(d[i]) * d[i];
    }
    for (float& v : d) v = float(v / std::sqrt(dnorm));
    const float eps = 0.05f;
    std::vector<float> plus = p, minus = p;
    for (size_t i = 0; i < p.size(); ++i) {
      plus[i] += eps * d[i];
      minus[i] -= eps * d[i];
    }
    const double fd = (expected_reward(plus) - expected_reward(minus)) / (2.0 * eps);
    double analytic = 0.0;  // the trainer minimizes the loss: its gradient is -dJ
    for (size_t i = 0; i < p.size(); ++i) analytic -= double(g.grad[i]) * d[i];
    std::printf("closed-set gradient along %s: finite differences %.6g, trainer %.6g\n",
                along_gradient ? "itself" : "a random direction", fd, analytic);
    EXPECT_NEAR(analytic, fd, 0.03 * gnorm + 1e-6);
  }
}

// ---- batches, checkpoints, resume ----------------------------------------------------

TEST(TrainLoop, BatchesWalkSeededEpochs) {
  std::vector<size_t> seen;
  for (int step = 0; step < 5; ++step) {
    const auto b = batch_indices(10, 4, 3, step);
    ASSERT_EQ(b.size(), 4u);
    seen.insert(seen.end(), b.begin(), b.end());
  }
  // Positions 0-9 are one permutation of the 10 examples, 10-19 the next.
  EXPECT_EQ(std::set<size_t>(seen.begin(), seen.begin() + 10).size(), 10u);
  EXPECT_EQ(std::set<size_t>(seen.begin() + 10, seen.end()).size(), 10u);
  EXPECT_EQ(batch_indices(10, 4, 3, 2), batch_indices(10, 4, 3, 2));
  EXPECT_NE(batch_indices(1000, 4, 3, 0), batch_indices(1000, 4, 4, 0));
  EXPECT_THROW(batch_indices(0, 4, 3, 0), Error);
}

TEST(TrainCheckpoint, RoundTripAndChecks) {
  const Tiny& t = tiny();
  TrainCheckpoint c;
  c.task = "sums";
  c.base_model_sha256 = t.svf->model_sha256();
  c.step = 7;
  c.seed = 0xfedcba9876543210ull;
  const size_t R = size_t(t.svf->total_rank());
  for (size_t i = 0; i < R; ++i) {
    c.p.push_back(0.1f + 1e-3f * float(i));
    c.adam_m.push_back(-1e-5f * float(i));
    c.adam_v.push_back(1e-9f * float(i));
    c.best_p.push_back(0.2f);
  }
  c.adam_steps = 7;
  c.best_accuracy = 1.0 / 3.0;
  c.best_step = 5;
  c.settings = {{"lr", 2e-3}};
  const std::string path = temp_dir() + "/c.ckpt";
  checkpoint_save(path, c);
  const TrainCheckpoint d = checkpoint_load(path, *t.svf);
  EXPECT_EQ(d.task, c.task);
  EXPECT_EQ(d.step, 7);
  EXPECT_EQ(d.seed, c.seed);
  EXPECT_EQ(d.p, c.p);
  EXPECT_EQ(d.adam_m, c.adam_m);
  EXPECT_EQ(d.adam_v, c.adam_v);
  EXPECT_EQ(d.best_p, c.best_p);
  EXPECT_EQ(d.adam_steps, 7);
  EXPECT_EQ(d.best_accuracy, c.best_accuracy);  // exact: 17 digits
  EXPECT_EQ(d.best_step, 5);
  EXPECT_EQ(d.settings, c.settings);

  c.adam_v.pop_back();
  EXPECT_THROW(checkpoint_save(path + "2", c), Error);
  EXPECT_FALSE(fs::exists(path + "2"));
  c.adam_v.push_back(0.0f);
  c.base_model_sha256 = std::string(64, '0');
  checkpoint_save(path + "3", c);
  try {
    checkpoint_load(path + "3", *t.svf);
    ADD_FAILURE() << "a checkpoint of another model was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("base model"), std::string::npos) << e.what();
  }
}

TrainOptions tiny_options(int steps) {
  TrainOptions o = train_preset("small");
  o.steps = steps;
  o.batch_prompts = 2;
  o.policy.samples_per_prompt = 2;
  o.policy.group_baseline = false;  // the tiny model is always wrong: keep A = -1
  o.policy.temperature = 1.0f;
  o.adam.lr = 0.05;
  o.validate_every = 2;
  o.validation_examples = 3;
  o.validation_batch = 3;
  o.checkpoint_every = 1;
  o.seed = 42;
  return o;
}

TEST(TrainLoop, ResumeContinuesExactly) {
  const Tiny& t = tiny();
  const std::string dir = temp_dir();

  // Four steps straight.
  TrainPaths straight{dir + "/a.st", dir + "/a.ckpt", dir + "/a.csv", false};
  train_expert(*t.model, t.svf, *t.task, tiny_options(4), straight);
  const TrainCheckpoint a = checkpoint_load(straight.checkpoint, *t.svf);

  // Two steps, then a new run resumes to four.
  TrainPaths split{dir + "/b.st", dir + "/b.ckpt", dir + "/b.csv", true};
  train_expert(*t.model, t.svf, *t.task, tiny_options(2), split);
  EXPECT_EQ(checkpoint_load(split.checkpoint, *t.svf).step, 2);
  const TrainReport r = train_expert(*t.model, t.svf, *t.task, tiny_options(4), split);
  const TrainCheckpoint b = checkpoint_load(split.checkpoint, *t.svf);

  EXPECT_EQ(r.steps_done, 4);
  EXPECT_EQ(a.step, 4);
  EXPECT_EQ(b.step, 4);
  EXPECT_EQ(a.adam_steps, 4);
  EXPECT_EQ(a.p, b.p);  // bit for bit
  EXPECT_EQ(a.adam_m, b.adam_m);
  EXPECT_EQ(a.adam_v, b.adam_v);
  EXPECT_EQ(a.best_p, b.best_p);
  const std::vector<float> p0 = bb::expert_init(*t.svf, "sums", "sums", 42).p;
  EXPECT_NE(a.p, p0);  // it did train

  // The CSV of the resumed run has the header and steps 0..4 once each.
  std::ifstream csv(split.csv);
  std::string line;
  std::vector<std::string> steps;
  while (std::getline(csv, line)) steps.push_back(line.substr(0, line.find(',')));
  EXPECT_EQ(steps, (std::vector<std::string>{"step", "0", "1", "2", "3", "4"}));

  // The expert file loads and holds the best p.
  const bb::Expert e = bb::expert_load(split.expert, *t.svf);
  EXPECT_EQ(e.p, b.best_p);
  EXPECT_EQ(e.task, "sums");
  EXPECT_EQ(e.training["preset"], "small");
}

}  // namespace
}  // namespace t2::adaptation
