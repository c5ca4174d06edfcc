// adaptation::Trainer — one REINFORCE step of an SVF expert (docs/method.md §2),
// split into what one rank does (rollouts on its prompts, the gradient of their
// summed loss in p) and what the optimizer does after the gradients of all ranks
// are added (divide by the number of samples, clip, Adam). Per sample i:
//   loss_i = -A_i * sum_t log pi'(y_t | x, y_<t)
//            + lambda * sum_t sum_v p_ref(v) (log p_ref(v) - log pi'(v))
// with A_i = r_i (reference) or r_i - mean of its prompt's group (group baseline).
// Only p gets a gradient: dL/dp = dL/dz * z (1 - z), z = sigmoid(p).
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "adaptation/adam.h"
#include "adaptation/task.h"
#include "backbone/generator.h"
#include "backbone/model.h"
#include "backbone/svf.h"
#include "backbone/train_forward.h"

namespace t2::adaptation {

struct PolicyConfig {
  int samples_per_prompt = 1;   // K answers drawn per prompt
  float temperature = 0.0f;     // 0: greedy (reference)
  float top_p = 1.0f;
  bool group_baseline = false;  // A = r - mean of the prompt's K rewards
  double kl_coef = 0.0;         // lambda
  int max_new_tokens = 0;       // 0: the task's
  int64_t max_rows = 1536;      // token rows per training forward (bounds activation memory)
};

// One sampled answer with its reward and advantage.
struct Rollout {
  int64_t example = 0;            // index into the examples given to rollout()
  int sample = 0;                 // 0..K-1 within its prompt
  std::vector<int32_t> prompt;    // chat-rendered prompt ids
  std::vector<int32_t> response;  // generated ids, plus the stop id when it stopped
  std::string text;
  bool correct = false;
  float reward = 0.0f;
  float advantage = 0.0f;
};

// Sums over the rollouts of one rank, before the division by the sample count.
struct PolicyGradient {
  std::vector<float> grad;  // d(sum_i loss_i)/dp, [total_rank]
  int64_t samples = 0, correct = 0, tokens = 0;
  int64_t trained = 0;      // samples that went through backward (A != 0 or lambda > 0)
  double reward_sum = 0.0;
  double loss_sum = 0.0;    // sum_i loss_i
  double pg_sum = 0.0;      // sum_i -A_i sum_t log pi
  double logprob_sum = 0.0; // sum over tokens of log pi
  double kl_sum = 0.0;      // sum over tokens of KL(p_ref || pi)
  double rollout_seconds = 0.0, gradient_seconds = 0.0;

  // Adds another rank's sums (an all-reduce does the same over the wire).
  void add(const PolicyGradient& other);
};

// A = r - mean(r over each consecutive group of group_size) (baseline), else A = r.
std::vector<float> advantages(std::span<const float> rewards, int group_size, bool baseline);

// The optimizer half of a step: grad /= total_samples, clip to max_norm, Adam on p.
// Returns the gradient norm before clipping.
double apply_gradient(std::span<float> grad, int64_t total_samples, double max_norm, Adam& adam,
                      std::span<float> p, double lr = -1.0);

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

class Trainer {
 public:
  Trainer(const backbone::Model& model, std::shared_ptr<const backbone::Svf> svf,
          const Task& task, PolicyConfig config);

  const PolicyConfig& config() const { return config_; }
  const backbone::Svf& svf() const { return *svf_; }

  // K answers per example generated with the expert p (z = sigmoid(p)), scored,
  // advantages filled. Sample k of example e draws from seed (seed, e's id, k), so
  // the answers do not depend on how prompts are split across ranks or batches.
  std::vector<Rollout> rollout(std::span<const Example> examples, std::span<const float> p,
                               uint64_t seed);

  // The summed loss of the rollouts and its gradient in p. Samples with A = 0 and
  // no KL term are counted but skip the forward and backward.
  PolicyGradient gradient(std::span<const Rollout> rollouts, std::span<const float> p);

  // rollout + gradient: one rank's share of a step.
  PolicyGradient compute(std::span<const Example> examples, std::span<const float> p,
                         uint64_t seed);

 private:
  // A task with a closed answer set: the policy is the softmax pi over the
  // candidates' log-likelihoods, and its exact REINFORCE gradient
  //   d E_pi[r] = sum_c pi_c (r_c - E_pi[r]) d log p(c)
  // comes from one rollout per candidate with advantage pi_c (r_c - E_pi[r]).
  std::vector<Rollout> rollout_closed(std::span<const Example> examples, std::span<const float> p);

  const backbone::Model& model_;
  std::shared_ptr<const backbone::Svf> svf_;
  const Task& task_;
  PolicyConfig config_;
  backbone::SvfSlots slots_;
  std::unique_ptr<backbone::TrainForward> tf_;
  std::unique_ptr<backbone::Generator> generator_;
};

// The loss of a chunk of rollouts (each with its advantage) under one z for all of
// them, in T = float (training) or double (finite-difference checks). With
// dz_sum, also runs backward and adds d(loss)/dz summed over the chunk's
// sequences into it. `tf` must have been built on the same slots as z.
struct LossTerms {
  double loss = 0.0, pg = 0.0, logprob = 0.0, kl = 0.0;
  int64_t tokens = 0;
};
template <typename T>
LossTerms policy_loss(backbone::TrainForwardT<T>& tf, std::span<const Rollout* const> chunk,
                      std::span<const T> z, double kl_coef, std::vector<double>* dz_sum);

// The seed of one sample: a mix of the step seed, the example and the sample index.
uint64_t sample_seed(uint64_t seed, const std::string& example_id, int sample);

}  // namespace t2::adaptation
