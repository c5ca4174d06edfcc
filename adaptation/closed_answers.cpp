// Closed-set scoring: prompts once, then each candidate's tokens with a cache
// rewind, all prompts of the batch together.
#include "adaptation/closed_answers.h"

#include <algorithm>
#include <cmath>

#include "backbone/kv_cache.h"
#include "t2/error.h"

namespace t2::adaptation {

namespace {

// log softmax(row)[target], in double.
double log_softmax_at(const float* row, int vocab, int32_t target) {
  const float mx = *std::max_element(row, row + vocab);
  double sum = 0.0;
  for (int v = 0; v < vocab; ++v) sum += std::exp(double(row[v] - mx));
  return double(row[target] - mx) - std::log(sum);
}

}  // namespace

std::vector<double> softmax(std::span<const double> v) {
  std::vector<double> out(v.begin(), v.end());
  if (out.empty()) return out;
  const double mx = *std::max_element(out.begin(), out.end());
  double sum = 0.0;
  for (double& x : out) sum += (x = std::exp(x - mx));
  for (double& x : out) x /= sum;
  return out;
}

std::vector<std::vector<double>> completion_logprobs(
    const backbone::Model& model, backbone::LinearHook* hook,
    std::span<const std::vector<int32_t>> prompts,
    std::span<const std::vector<int32_t>> completions) {
  const size_t n = prompts.size();
  std::vector<std::vector<double>> score(n, std::vector<double>(completions.size(), 0.0));
  if (n == 0 || completions.empty()) return score;
  size_t longest = 0;
  for (const auto& c : completions) {
    if (c.empty()) fail("closed answers: a candidate completion has no tokens");
    longest = std::max(longest, c.size());
  }
  const int n_ctx = model.config().n_ctx;
  std::vector<backbone::KvCache> caches;
  caches.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (prompts[i].empty()) fail("closed answers: prompt {} has no tokens", i);
    if (int64_t(prompts[i].size() + longest) > n_ctx)
      fail("closed answers: prompt {} of {} tokens with a {}-token answer exceeds the context "
           "of {}", i, prompts[i].size(), longest, n_ctx);
    caches.emplace_back(model.config(), int(prompts[i].size() + longest));
  }
  if (hook) hook->begin_batch({});

  backbone::Forward forward(model);
  const int vocab = model.tokenizer().vocab_size();
  std::vector<float> logits;
  std::vector<backbone::SequenceInput> inputs;
  for (size_t i = 0; i < n; ++i) inputs.push_back({&caches[i], prompts[i], false});
  forward.run(inputs, logits, hook);
  const std::vector<float> last = logits;  // each prompt's last position: the first token

  for (size_t c = 0; c < completions.size(); ++c) {
    const auto& tokens = completions[c];
    for (size_t i = 0; i < n; ++i)
      score[i][c] = log_softmax_at(last.data() + int64_t(i) * vocab, vocab, tokens[0]);
    if (tokens.size() < 2) continue;
    // All but the last token are fed (the last is only a target).
    const std::span<const int32_t> feed(tokens.data(), tokens.size() - 1);
    inputs.clear();
    for (size_t i = 0; i < n; ++i) inputs.push_back({&caches[i], feed, true});
    forward.run(inputs, logits, hook);
    for (size_t i = 0; i < n; ++i) {
      for (size_t a = 1; a < tokens.size(); ++a) {
        const int64_t row = int64_t(i * feed.size() + a - 1);
        score[i][c] += log_softmax_at(logits.data() + row * vocab, vocab, tokens[a]);
      }
      caches[i].truncate(int(prompts[i].size()));
    }
  }
  return score;
}

}  // namespace t2::adaptation
