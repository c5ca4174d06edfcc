// Next-token choice from logits: greedy (temperature 0), or temperature with
// nucleus (top-p) sampling from a per-sequence seeded generator, so a request's
// output depends only on its own seed, not on what it is batched with.
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace t2::backbone {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy
  float top_p = 1.0f;        // (0, 1]
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  int32_t sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

int32_t argmax(std::span<const float> values);

}  // namespace t2::backbone
