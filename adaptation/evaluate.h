// adaptation::evaluate — accuracy of the backbone (optionally adapted by a
// LinearHook, e.g. an SVF expert) on a task's examples: greedy generation in
// batches through backbone::Generator, every completion scored by the task.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "adaptation/task.h"
#include "backbone/forward.h"
#include "backbone/model.h"

namespace t2::adaptation {

struct Interval {
  double low = 0.0;
  double high = 1.0;
};
// Wilson score interval for `successes` out of `n` (z = 1.96: 95 %). n = 0 gives [0, 1].
Interval wilson_interval(int64_t successes, int64_t n, double z = 1.959963984540054);

struct EvalOptions {
  int batch_size = 16;
  int max_new_tokens = 0;                 // 0: the task's max_new_tokens
  backbone::LinearHook* hook = nullptr;   // adapts every sequence; null: base weights
  std::string label;                      // names the run in log lines ("gsm8k/validation")
};

struct ExampleResult {
  std::string id;
  bool correct = false;
  float reward = 0.0f;
  std::string extracted;
  std::string reference;
  std::string completion;
  std::string finish_reason;  // "stop" or "length"
  int prompt_tokens = 0;
  int generated_tokens = 0;
};

struct EvalResult {
  int64_t n = 0;
  int64_t correct = 0;
  int64_t unanswered = 0;  // nothing extracted from the completion
  int64_t truncated = 0;   // hit max_new_tokens
  double accuracy = 0.0;
  Interval ci95;
  double seconds = 0.0;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  std::vector<ExampleResult> examples;  // in the order given
};

// Runs every example (greedy) and scores it. Progress goes to the "adapt" logger,
// one line per batch. Throws t2::Error when a prompt does not fit the context.
EvalResult evaluate(const backbone::Model& model, const Task& task,
                    std::span<const Example> examples, const EvalOptions& options = {});

}  // namespace t2::adaptation
