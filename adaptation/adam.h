// Adam for expert parameters (docs/method.md §2): bias-corrected first and second
// moments per value, optional decoupled weight decay (AdamW), and clipping of the
// global gradient norm. State is plain vectors so a checkpoint can save and
// restore it exactly: the same gradients after a restore give the same values.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace t2::adaptation {

struct AdamOptions {
  double lr = 2e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled (AdamW): p -= lr * wd * p before the step
};

class Adam {
 public:
  Adam(int64_t size, AdamOptions options);

  // One update of `params` from `grad` (same length as the state) with learning
  // rate `lr` (schedules pass theirs; <0 takes options().lr):
  //   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  t += 1
  //   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
  void step(std::span<float> params, std::span<const float> grad, double lr = -1.0);

  int64_t steps() const { return t_; }
  const AdamOptions& options() const { return options_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }
  // Replaces the state (from a checkpoint); throws t2::Error on a size mismatch.
  void restore(std::vector<float> m, std::vector<float> v, int64_t steps);

 private:
  AdamOptions options_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

// sqrt(sum g^2), accumulated in double.
double grad_norm(std::span<const float> grad);

// Scales `grad` in place so its global norm is at most `max_norm` (<= 0: no
// clipping). Returns the norm before clipping.
double clip_grad_norm(std::span<float> grad, double max_norm);

}  // namespace t2::adaptation
