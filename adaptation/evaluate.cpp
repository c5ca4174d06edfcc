// Evaluation loop: render, tokenize, generate a batch, score, log one line.
#include "adaptation/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "adaptation/closed_answers.h"
#include "backbone/generator.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::adaptation {

Interval wilson_interval(int64_t successes, int64_t n, double z) {
  if (n <= 0) return {0.0, 1.0};
  const double p = double(successes) / double(n);
  const double z2n = z * z / double(n);
  const double center = (p + z2n / 2.0) / (1.0 + z2n);
  const double half = z * std::sqrt(p * (1.0 - p) / double(n) + z2n / (4.0 * double(n))) /
                      (1.0 + z2n);
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

namespace {

// The most likely closed answer of each request, as if generated.
std::vector<backbone::GenerationResult> pick_closed(
    const backbone::Model& model, backbone::LinearHook* hook,
    std::span<const backbone::GenerationRequest> requests,
    std::span<const std::vector<int32_t>> closed) {
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& r : requests) prompts.push_back(r.prompt);
  const auto score = completion_logprobs(model, hook, prompts, closed);
  std::vector<backbone::GenerationResult> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const size_t c = size_t(std::max_element(score[i].begin(), score[i].end()) - score[i].begin());
    out[i].tokens = closed[c];
    out[i].text = model.tokenizer().decode(closed[c]);
    out[i].finish_reason = "stop";
  }
  return out;
}

}  // namespace

EvalResult evaluate(const backbone::Model& model, const Task& task,
                    std::span<const Example> examples, const EvalOptions& options) {
  if (options.batch_size < 1) fail("batch size should be at least 1, found {}", options.batch_size);
  auto log = log::get("adapt");
  const std::string label = options.label.empty() ? task.name() : options.label;
  const auto& tok = model.tokenizer();
  const int max_tokens =
      options.max_new_tokens > 0 ? options.max_new_tokens : task.max_new_tokens();

  EvalResult result;
  result.examples.reserve(examples.size());
  backbone::Generator generator(model);
  std::vector<std::vector<int32_t>> closed;  // a closed answer set is scored, not generated
  for (const auto& c : task.closed_completions()) closed.push_back(tok.encode(c));
  const auto start = std::chrono::steady_clock::now();

  for (size_t first = 0; first < examples.size(); first += size_t(options.batch_size)) {
    const size_t last = std::min(examples.size(), first + size_t(options.batch_size));

    std::vector<backbone::GenerationRequest> requests;
    for (size_t i = first; i < last; ++i) {
      backbone::GenerationRequest req;
      req.prompt = prompt_ids(tok, examples[i]);
      req.max_tokens = max_tokens;
      req.sampling = {0.0f, 1.0f, 0};  // greedy
      requests.push_back(std::move(req));
    }
    const auto outputs = closed.empty() ? generator.generate(requests, options.hook)
                                        : pick_closed(model, options.hook, requests, closed);

    for (size_t i = first; i < last; ++i) {
      const auto& out = outputs[i - first];
      const Score score = task.score(examples[i], out.text);
      ExampleResult r{examples[i].id, score.correct, score.reward, score.extracted,
                      examples[i].reference, out.text, out.finish_reason,
                      int(requests[i - first].prompt.size()), int(out.tokens.size())};
      result.correct += r.correct;
      result.unanswered += r.extracted.empty();
      result.truncated += r.finish_reason == "length";
      result.prompt_tokens += r.prompt_tokens;
      result.generated_tokens += r.generated_tokens;
      log->debug("{} {}: {} (answered '{}', reference '{}')", label, r.id,
                 r.correct ? "correct" : "wrong", r.extracted, r.reference);
      result.examples.push_back(std::move(r));
    }

    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    log->info("eval {}: {:>4}/{} done, {} correct ({:.1f} %), {:.0f} s, {:.1f} new tok/s", label,
              last, examples.size(), result.correct, 100.0 * double(result.correct) / double(last),
              elapsed, double(result.generated_tokens) / std::max(elapsed, 1e-9));
  }

  result.n = int64_t(examples.size());
  result.accuracy = result.n ? double(result.correct) / double(result.n) : 0.0;
  result.ci95 = wilson_interval(result.correct, result.n);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace t2::adaptation
