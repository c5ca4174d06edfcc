// Adam and gradient clipping (adam.h). Moments are kept in f32 like the
// parameters; each update is computed in double and rounded once.
#include "adaptation/adam.h"

#include <cmath>

#include "t2/error.h"

namespace t2::adaptation {

Adam::Adam(int64_t size, AdamOptions options)
    : options_(options), m_(size_t(size), 0.0f), v_(size_t(size), 0.0f) {
  if (size < 0) fail("adam: negative size {}", size);
  if (!(options.beta1 >= 0.0 && options.beta1 < 1.0 && options.beta2 >= 0.0 &&
        options.beta2 < 1.0)) {
    fail("adam: betas should lie in [0, 1), found {} and {}", options.beta1, options.beta2);
  }
  if (!(options.eps > 0.0)) fail("adam: eps should be > 0, found {}", options.eps);
}

void Adam::step(std::span<float> params, std::span<const float> grad, double lr) {
  if (params.size() != m_.size() || grad.size() != m_.size()) {
    fail("adam: state holds {} values, got {} parameters and {} gradients", m_.size(),
         params.size(), grad.size());
  }
  if (lr < 0.0) lr = options_.lr;
  ++t_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double c1 = 1.0 - std::pow(b1, double(t_)), c2 = 1.0 - std::pow(b2, double(t_));
  const double decay = 1.0 - lr * options_.weight_decay;
  const int64_t n = int64_t(m_.size());
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const double g = grad[size_t(i)];
    const double m = b1 * double(m_[size_t(i)]) + (1.0 - b1) * g;
    const double v = b2 * double(v_[size_t(i)]) + (1.0 - b2) * g * g;
    m_[size_t(i)] = float(m);
    v_[size_t(i)] = float(v);
    const double p = double(params[size_t(i)]) * decay;
    params[size_t(i)] = float(p - lr * (m / c1) / (std::sqrt(v / c2) + options_.eps));
  }
}

void Adam::restore(std::vector<float> m, std::vector<float> v, int64_t steps) {
  if (m.size() != m_.size() || v.size() != m_.size()) {
    fail("adam: restoring {} and {} moment values into a state of {}", m.size(), v.size(),
         m_.size());
  }
  if (steps < 0) fail("adam: restoring a negative step count {}", steps);
  m_ = std::move(m);
  v_ = std::move(v);
  t_ = steps;
}

double grad_norm(std::span<const float> grad) {
  double sum = 0.0;
  for (float g : grad) sum += double(g) * double(g);
  return std::sqrt(sum);
}

double clip_grad_norm(std::span<float> grad, double max_norm) {
  const double norm = grad_norm(grad);
  if (max_norm > 0.0 && norm > max_norm) {
    const double scale = max_norm / norm;
    for (float& g : grad) g = float(double(g) * scale);
  }
  return norm;
}

}  // namespace t2::adaptation
