// Greedy and temperature/top-p sampling (see sampler.h).
#include "backbone/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "t2/error.h"

namespace t2::backbone {

int32_t argmax(std::span<const float> values) {
  return int32_t(std::max_element(values.begin(), values.end()) - values.begin());
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    fail("top_p must be in (0, 1], got {}", params.top_p);
  }
  if (!std::isfinite(params.temperature) || params.temperature < 0.0f) {
    fail("temperature must be >= 0, got {}", params.temperature);
  }
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (params_.temperature <= 0.0f) return argmax(logits);

  // Probabilities at temperature T, in double for a stable normaliser.
  const float mx = logits[size_t(argmax(logits))];
  std::vector<double> p(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    p[i] = std::exp(double(logits[i] - mx) / params_.temperature);
    sum += p[i];
  }
  std::uniform_real_distribution<double> uniform(0.0, 1.0);

  if (params_.top_p >= 1.0f) {
    double u = uniform(rng_) * sum;
    for (size_t i = 0; i < p.size(); ++i) {
      u -= p[i];
      if (u <= 0.0) return int32_t(i);
    }
    return int32_t(p.size() - 1);
  }

  // Nucleus: the smallest set of most likely tokens whose mass reaches top_p.
  std::vector<int32_t> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return p[size_t(a)] > p[size_t(b)] || (p[size_t(a)] == p[size_t(b)] && a < b);
  });
  double mass = 0.0;
  size_t keep = 0;
  while (keep < order.size() && mass < params_.top_p * sum) mass += p[size_t(order[keep++])];
  double u = uniform(rng_) * mass;
  for (size_t i = 0; i < keep; ++i) {
    u -= p[size_t(order[i])];
    if (u <= 0.0) return order[i];
  }
  return order[keep - 1];
}

}  // namespace t2::backbone
