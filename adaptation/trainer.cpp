// The REINFORCE step (trainer.h): rollouts through the generator with the SVF
// hook, then teacher-forced forward and backward in chunks of at most max_rows
// token rows. Shapes: V = vocab, rows = response tokens of a chunk, R = total rank.
#include "adaptation/trainer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "adaptation/closed_answers.h"
#include "backbone/svf_hook.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::adaptation {

namespace bb = backbone;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::vector<float> sigmoid_all(std::span<const float> p) {
  std::vector<float> z(p.size());
  for (size_t i = 0; i < p.size(); ++i) z[i] = sigmoid(p[i]);
  return z;
}

}  // namespace

uint64_t sample_seed(uint64_t seed, const std::string& example_id, int sample) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the id
  for (unsigned char c : example_id) h = (h ^ c) * 0x100000001b3ull;
  return splitmix64(splitmix64(seed ^ h) + uint64_t(sample));
}

void PolicyGradient::add(const PolicyGradient& o) {
  if (grad.empty()) grad.assign(o.grad.size(), 0.0f);
  if (grad.size() != o.grad.size()) {
    fail("policy gradient: adding {} values to {}", o.grad.size(), grad.size());
  }
  for (size_t i = 0; i < grad.size(); ++i) grad[i] += o.grad[i];
  samples += o.samples;
  correct += o.correct;
  tokens += o.tokens;
  trained += o.trained;
  reward_sum += o.reward_sum;
  loss_sum += o.loss_sum;
  pg_sum += o.pg_sum;
  logprob_sum += o.logprob_sum;
  kl_sum += o.kl_sum;
  rollout_seconds = std::max(rollout_seconds, o.rollout_seconds);  // ranks run side by side
  gradient_seconds = std::max(gradient_seconds, o.gradient_seconds);
}

std::vector<float> advantages(std::span<const float> rewards, int group_size, bool baseline) {
  if (group_size < 1 || rewards.size() % size_t(group_size) != 0) {
    fail("advantages: {} rewards do not split into groups of {}", rewards.size(), group_size);
  }
  std::vector<float> a(rewards.begin(), rewards.end());
  if (!baseline) return a;
  for (size_t g = 0; g < rewards.size(); g += size_t(group_size)) {
    double mean = 0.0;
    for (int k = 0; k < group_size; ++k) mean += rewards[g + size_t(k)];
    mean /= group_size;
    for (int k = 0; k < group_size; ++k) a[g + size_t(k)] = float(rewards[g + size_t(k)] - mean);
  }
  return a;
}

double apply_gradient(std::span<float> grad, int64_t total_samples, double max_norm, Adam& adam,
                      std::span<float> p, double lr) {
  if (total_samples < 1) fail("apply gradient: no samples in the step");
  const float inv = 1.0f / float(total_samples);
  for (float& g : grad) g *= inv;
  const double norm = clip_grad_norm(grad, max_norm);
  adam.step(p, grad, lr);
  return norm;
}

// ---- the loss of a chunk ----------------------------------------------------------

template <typename T>
LossTerms policy_loss(bb::TrainForwardT<T>& tf, std::span<const Rollout* const> chunk,
                      std::span<const T> z, double kl_coef, std::vector<double>* dz_sum) {
  // Sequences: prompt + response, scored on the response.
  std::vector<std::vector<int32_t>> ids(chunk.size());
  std::vector<bb::TrainSequenceT<T>> batch, base;
  for (size_t i = 0; i < chunk.size(); ++i) {
    ids[i] = chunk[i]->prompt;
    ids[i].insert(ids[i].end(), chunk[i]->response.begin(), chunk[i]->response.end());
    const int n_prompt = int(chunk[i]->prompt.size());
    batch.push_back({ids[i], n_prompt, z});
    base.push_back({ids[i], n_prompt, {}});
  }

  // The reference model's log-softmax rows, [rows x V], for the KL term.
  std::vector<T> ref;
  if (kl_coef > 0.0) {
    tf.run(base, false);
    const int64_t V = int64_t(tf.logits().size()) / std::max<int64_t>(tf.rows(), 1);
    ref.resize(tf.logits().size());
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < tf.rows(); ++r) {
      bb::log_softmax(&tf.logits()[size_t(r * V)], V, &ref[size_t(r * V)]);
    }
  }

  const bool grad = dz_sum != nullptr;
  tf.run(batch, grad);
  const int64_t rows = tf.rows();
  const int64_t V = int64_t(tf.logits().size()) / std::max<int64_t>(rows, 1);
  const auto& seq_rows = tf.sequence_rows();
  std::vector<int32_t> row_seq(static_cast<size_t>(rows)), row_target(static_cast<size_t>(rows));
  for (size_t s = 0; s < chunk.size(); ++s) {
    for (int64_t r = seq_rows[s]; r < seq_rows[s + 1]; ++r) {
      row_seq[size_t(r)] = int32_t(s);
      row_target[size_t(r)] = chunk[s]->response[size_t(r - seq_rows[s])];
    }
  }

  // Per row: the log-prob term, the KL term and, in place, dloss/dlogits.
  LossTerms terms;
  terms.tokens = rows;
  double pg = 0.0, logprob = 0.0, kl = 0.0;
  T* logits = tf.logits().data();
#pragma omp parallel reduction(+ : pg, logprob, kl)
  {
    std::vector<T> row(static_cast<size_t>(V)), scratch(static_cast<size_t>(V));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      T* lr = logits + r * V;
      const double a = chunk[size_t(row_seq[size_t(r)])]->advantage;
      const double lp = double(tf.token_logprobs()[size_t(r)]);
      logprob += lp;
      pg -= a * lp;
      std::copy(lr, lr + V, row.begin());
      T* drow = grad ? lr : scratch.data();
      if (grad) std::fill(lr, lr + V, T(0));
      if (grad && a != 0.0) bb::add_logprob_grad(row.data(), V, row_target[size_t(r)], -a, drow);
      if (kl_coef > 0.0) {
        kl += bb::add_kl_grad(row.data(), &ref[size_t(r * V)], V, grad ? kl_coef : 0.0, drow);
      }
    }
  }
  terms.pg = pg;
  terms.logprob = logprob;
  terms.kl = kl;
  terms.loss = pg + kl_coef * kl;
  if (!grad) return terms;

  // dloss/dz of each sequence [seqs x R], summed over the chunk.
  const std::vector<T>& dz = tf.backward(tf.logits());
  const size_t R = z.size();
  dz_sum->resize(R, 0.0);
  for (size_t s = 0; s < chunk.size(); ++s) {
    const T* d = &dz[s * R];
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < int64_t(R); ++i) (*dz_sum)[size_t(i)] += double(d[i]);
  }
  return terms;
}

template LossTerms policy_loss<float>(bb::TrainForwardT<float>&, std::span<const Rollout* const>,
                                      std::span<const float>, double, std::vector<double>*);
template LossTerms policy_loss<double>(bb::TrainForwardT<double>&,
                                       std::span<const Rollout* const>, std::span<const double>,
                                       double, std::vector<double>*);

// ---- Trainer ----------------------------------------------------------------------

Trainer::Trainer(const bb::Model& model, std::shared_ptr<const bb::Svf> svf, const Task& task,
                 PolicyConfig config)
    : model_(model),
      svf_(std::move(svf)),
      task_(task),
      config_(config),
      slots_(bb::SvfSlots::from(*svf_, model.config().n_layer)) {
  if (config_.samples_per_prompt < 1) {
    fail("trainer: samples per prompt should be at least 1, found {}", config_.samples_per_prompt);
  }
  if (config_.group_baseline && config_.samples_per_prompt < 2) {
    fail("trainer: a group-mean baseline needs at least 2 samples per prompt (found {}); with "
         "one sample every advantage would be 0", config_.samples_per_prompt);
  }
  if (config_.kl_coef < 0.0) fail("trainer: KL coefficient should be >= 0, found {}",
                                  config_.kl_coef);
  if (config_.max_rows < 1) fail("trainer: max_rows should be >= 1, found {}", config_.max_rows);
  tf_ = std::make_unique<bb::TrainForward>(model_, slots_);
  generator_ = std::make_unique<bb::Generator>(model_);
}

std::vector<Rollout> Trainer::rollout(std::span<const Example> examples, std::span<const float> p,
                                      uint64_t seed) {
  if (int64_t(p.size()) != svf_->total_rank()) {
    fail("trainer: p has {} values, the SVF set needs {}", p.size(), svf_->total_rank());
  }
  if (!task_.closed_completions().empty()) return rollout_closed(examples, p);
  const auto& tok = model_.tokenizer();
  const int K = config_.samples_per_prompt;
  const int max_tokens = config_.max_new_tokens > 0 ? config_.max_new_tokens
                                                    : task_.max_new_tokens();

  std::vector<Rollout> rollouts;
  std::vector<bb::GenerationRequest> requests;
  for (size_t e = 0; e < examples.size(); ++e) {
    const auto prompt = prompt_ids(tok, examples[e]);
    for (int k = 0; k < K; ++k) {
      Rollout r;
      r.example = int64_t(e);
      r.sample = k;
      r.prompt = prompt;
      rollouts.push_back(std::move(r));
      bb::GenerationRequest req;
      req.prompt = prompt;
      req.max_tokens = max_tokens;
      req.sampling = {config_.temperature, config_.top_p, sample_seed(seed, examples[e].id, k)};
      requests.push_back(std::move(req));
    }
  }
  if (requests.empty()) return rollouts;

  // One adapter for every sequence, used once: the factored path (building W'
  // per slot costs more than the few thousand rows of a step save).
  auto adapter = bb::Adapter::from_z(*svf_, sigmoid_all(p), "policy");
  bb::SvfHookOptions options;
  options.path = bb::SvfPath::kFactored;
  bb::SvfHook hook(model_, svf_, std::make_shared<bb::MaterializedCache>(0), options);
  hook.set_adapters(std::vector<std::shared_ptr<const bb::Adapter>>(requests.size(), adapter));
  const auto outputs = generator_->generate(requests, &hook);

  std::vector<float> rewards;
  for (size_t i = 0; i < rollouts.size(); ++i) {
    Rollout& r = rollouts[i];
    r.response = outputs[i].tokens;
    // The stop token is part of the answer the policy chose. The generator does not
    // say which stop id it met; eos (<|im_end|> in ChatML models) is the usual one.
    if (outputs[i].finish_reason == "stop" || r.response.empty()) r.response.push_back(tok.eos_id());
    r.text = outputs[i].text;
    const Score score = task_.score(examples[size_t(r.example)], r.text);
    r.correct = score.correct;
    r.reward = score.reward;
    rewards.push_back(r.reward);
  }
  const auto a = advantages(rewards, K, config_.group_baseline);
  for (size_t i = 0; i < rollouts.size(); ++i) rollouts[i].advantage = a[i];
  return rollouts;
}

std::vector<Rollout> Trainer::rollout_closed(std::span<const Example> examples,
                                             std::span<const float> p) {
  const auto& tok = model_.tokenizer();
  const auto& names = task_.closed_completions();
  std::vector<std::vector<int32_t>> closed;
  for (const auto& c : names) closed.push_back(tok.encode(c));
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& e : examples) prompts.push_back(prompt_ids(tok, e));

  auto adapter = bb::Adapter::from_z(*svf_, sigmoid_all(p), "policy");
  bb::SvfHookOptions options;
  options.path = bb::SvfPath::kFactored;
  bb::SvfHook hook(model_, svf_, std::make_shared<bb::MaterializedCache>(0), options);
  std::vector<Rollout> rollouts;
  // Prompts in batches of 16 (one forward each, plus one per candidate).
  for (size_t first = 0; first < examples.size(); first += 16) {
    const size_t last = std::min(examples.size(), first + 16);
    hook.set_adapters(std::vector<std::shared_ptr<const bb::Adapter>>(last - first, adapter));
    const auto score = completion_logprobs(
        model_, &hook, std::span(prompts).subspan(first, last - first), closed);
    for (size_t e = first; e < last; ++e) {
      const auto pi = softmax(score[e - first]);
      const size_t best = size_t(std::max_element(pi.begin(), pi.end()) - pi.begin());
      std::vector<float> rewards;
      std::vector<bool> right;
      double expected = 0.0;
      for (size_t c = 0; c < closed.size(); ++c) {
        const Score s = task_.score(examples[e], names[c]);
        rewards.push_back(s.reward);
        right.push_back(s.correct);
        expected += pi[c] * s.reward;
      }
      for (size_t c = 0; c < closed.size(); ++c) {
        Rollout r;
        r.example = int64_t(e);
        r.sample = int(c);
        r.prompt = prompts[e];
        r.response = closed[c];
        r.text = names[c];
        r.correct = c == best && right[c];  // the policy's greedy answer was right
        r.reward = c == best ? rewards[c] : 0.0f;
        r.advantage = float(pi[c] * (rewards[c] - expected));
        rollouts.push_back(std::move(r));
      }
    }
  }
  return rollouts;
}

PolicyGradient Trainer::gradient(std::span<const Rollout> rollouts, std::span<const float> p) {
  const int64_t R = svf_->total_rank();
  if (int64_t(p.size()) != R) {
    fail("trainer: p has {} values, the SVF set needs {}", p.size(), R);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<float> z = sigmoid_all(p);

  PolicyGradient g;
  g.grad.assign(size_t(R), 0.0f);
  std::vector<const Rollout*> active;
  for (const Rollout& r : rollouts) {
    // A closed answer set counts each prompt once (its candidates are one sample).
    if (task_.closed_completions().empty() || r.sample == 0) ++g.samples;
    g.correct += r.correct;
    g.reward_sum += r.reward;
    g.tokens += int64_t(r.response.size());
    if (r.advantage != 0.0f || config_.kl_coef > 0.0) active.push_back(&r);
  }
  g.trained = int64_t(active.size());

  // Chunks of at most max_rows input rows (a lone longer sequence is its own chunk).
  std::vector<double> dz_sum(size_t(R), 0.0);
  size_t first = 0;
  while (first < active.size()) {
    size_t last = first;
    int64_t rows = 0;
    while (last < active.size()) {
      const int64_t n = int64_t(active[last]->prompt.size() + active[last]->response.size()) - 1;
      if (last > first && rows + n > config_.max_rows) break;
      rows += n;
      ++last;
    }
    const std::span<const Rollout* const> chunk(active.data() + first, last - first);
    const LossTerms t = policy_loss<float>(*tf_, chunk, z, config_.kl_coef, &dz_sum);
    g.loss_sum += t.loss;
    g.pg_sum += t.pg;
    g.logprob_sum += t.logprob;
    g.kl_sum += t.kl;
    first = last;
  }

  // Chain rule to p: dp = dz * z (1 - z).
  for (int64_t i = 0; i < R; ++i) {
    const double zi = z[size_t(i)];
    g.grad[size_t(i)] = float(dz_sum[size_t(i)] * zi * (1.0 - zi));
  }
  g.gradient_seconds = seconds_since(t0);
  return g;
}

PolicyGradient Trainer::compute(std::span<const Example> examples, std::span<const float> p,
                                uint64_t seed) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto rollouts = rollout(examples, p, seed);
  const double rollout_seconds = seconds_since(t0);
  PolicyGradient g = gradient(rollouts, p);
  g.rollout_seconds = rollout_seconds;
  return g;
}

}  // namespace t2::adaptation
