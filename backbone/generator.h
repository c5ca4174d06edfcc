// backbone::Generator — batched generation. Every request carries its own prompt,
// sampling settings, token budget and stop ids; prompts of different lengths are
// prefilled together and decoded in lock-step, each sequence leaving the batch
// when it stops. Results do not depend on batch composition (up to f32 rounding
// of the GEMM).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backbone/forward.h"
#include "backbone/model.h"
#include "backbone/sampler.h"

namespace t2::backbone {

struct GenerationRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int max_tokens = 256;
  std::vector<int32_t> stop_ids;  // empty: the tokenizer's stop ids
  bool ignore_stops = false;      // run to max_tokens whatever is sampled
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated, without the stop token
  std::string text;
  std::string finish_reason;    // "stop" or "length"
  int prompt_tokens = 0;
};

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
};

class Generator {
 public:
  explicit Generator(const Model& model, int max_prefill_tokens = 2048)
      : model_(model), forward_(model), max_prefill_tokens_(max_prefill_tokens) {}

  // Runs all requests to completion. Throws t2::Error (before any work) on an
  // empty prompt, a prompt past the context, or bad sampling settings.
  // `hook`, if given, adapts linear layers per request (SVF experts): before
  // each forward pass it gets begin_batch(request index of every sequence).
  std::vector<GenerationResult> generate(const std::vector<GenerationRequest>& requests,
                                         LinearHook* hook = nullptr);

  const GenerationStats& last_stats() const { return stats_; }

 private:
  const Model& model_;
  Forward forward_;
  int max_prefill_tokens_;
  GenerationStats stats_;
};

}  // namespace t2::backbone
