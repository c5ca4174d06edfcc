// Batched generation (see generator.h): chunked prefill of all prompts, then
// one forward pass per step over every still-active sequence. Before each pass
// the hook learns which request every batch sequence is (rows shift as
// sequences stop and prefill chunks advance).
#include "backbone/generator.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "t2/error.h"

namespace t2::backbone {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::vector<GenerationResult> Generator::generate(const std::vector<GenerationRequest>& requests,
                                                  LinearHook* hook) {
  const ModelConfig& c = model_.config();
  const int n = int(requests.size());
  stats_ = {};

  std::vector<Sampler> samplers;
  samplers.reserve(size_t(n));
  for (int i = 0; i < n; ++i) {
    const GenerationRequest& r = requests[size_t(i)];
    if (r.prompt.empty()) fail("request {}: empty prompt", i);
    if (r.max_tokens < 0) fail("request {}: max_tokens must be >= 0", i);
    if (int64_t(r.prompt.size()) + r.max_tokens > c.n_ctx) {
      fail("request {}: prompt of {} tokens plus {} new tokens exceeds the context of {}", i,
           r.prompt.size(), r.max_tokens, c.n_ctx);
    }
    for (int32_t t : r.prompt) {
      if (t < 0 || t >= c.n_vocab) fail("request {}: token id {} outside the vocabulary", i, t);
    }
    samplers.emplace_back(r.sampling);
  }

  std::vector<GenerationResult> results(static_cast<size_t>(n));
  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<std::vector<int32_t>> stops(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const GenerationRequest& r = requests[size_t(i)];
    caches.push_back(std::make_unique<KvCache>(c, int(r.prompt.size()) + r.max_tokens));
    stops[size_t(i)] = r.stop_ids.empty() ? model_.tokenizer().stop_ids() : r.stop_ids;
    results[size_t(i)].prompt_tokens = int(r.prompt.size());
    stats_.prompt_tokens += int64_t(r.prompt.size());
  }

  std::vector<float> logits;
  std::vector<int32_t> next(static_cast<size_t>(n), -1);
  std::vector<bool> active(static_cast<size_t>(n), false);

  auto take = [&](int i, const float* row) {
    const GenerationRequest& r = requests[size_t(i)];
    GenerationResult& res = results[size_t(i)];
    const int32_t tok = samplers[size_t(i)].sample({row, size_t(c.n_vocab)});
    const auto& st = stops[size_t(i)];
    if (!r.ignore_stops && std::find(st.begin(), st.end(), tok) != st.end()) {
      res.finish_reason = "stop";
      active[size_t(i)] = false;
      return;
    }
    res.tokens.push_back(tok);
    next[size_t(i)] = tok;
    active[size_t(i)] = int(res.tokens.size()) < r.max_tokens;
    if (!active[size_t(i)]) res.finish_reason = "length";
  };

  // Prefill in chunks of whole prompts up to max_prefill_tokens_ (a longer
  // prompt goes alone), sampling each sequence's first token.
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n;) {
    std::vector<SequenceInput> batch;
    std::vector<int> ids;
    int64_t tokens = 0;
    while (i < n && (batch.empty() ||
                     tokens + int64_t(requests[size_t(i)].prompt.size()) <= max_prefill_tokens_)) {
      tokens += int64_t(requests[size_t(i)].prompt.size());
      batch.push_back({caches[size_t(i)].get(), requests[size_t(i)].prompt, false});
      ids.push_back(i++);
    }
    if (hook) hook->begin_batch(ids);
    forward_.run(batch, logits, hook);
    for (size_t b = 0; b < ids.size(); ++b) {
      if (requests[size_t(ids[b])].max_tokens == 0) {
        results[size_t(ids[b])].finish_reason = "length";
        continue;
      }
      take(ids[b], &logits[b * size_t(c.n_vocab)]);
    }
  }
  stats_.prefill_seconds = seconds_since(t0);

  // Decode: one token per active sequence per step.
  t0 = std::chrono::steady_clock::now();
  for (;;) {
    std::vector<SequenceInput> batch;
    std::vector<int> ids;
    for (int i = 0; i < n; ++i) {
      if (!active[size_t(i)]) continue;
      batch.push_back({caches[size_t(i)].get(), {&next[size_t(i)], 1}, false});
      ids.push_back(i);
    }
    if (batch.empty()) break;
    if (hook) hook->begin_batch(ids);
    forward_.run(batch, logits, hook);
    for (size_t b = 0; b < ids.size(); ++b) take(ids[b], &logits[b * size_t(c.n_vocab)]);
  }
  stats_.decode_seconds = seconds_since(t0);
  if (hook) hook->begin_batch({});  // a later direct Forward::run means sequence = request

  for (GenerationResult& r : results) {
    stats_.generated_tokens += int64_t(r.tokens.size());
    r.text = model_.tokenizer().decode(r.tokens, true);
  }
  return results;
}

}  // namespace t2::backbone
