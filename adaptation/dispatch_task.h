// The dispatch task: training data for the classification expert (docs/method.md
// §3, strategy 2). Each example is the pass-1 classification prompt
// (classification_messages, the Dispatcher's own) of one request from an enabled
// task, its answer opened by "Classification: \boxed{" as pass 1 scores it and
// answered by that task's category as an exact \boxed label. Train
// examples come from the tasks' train splits (even indices), validation from
// their validation splits (odd indices); classes are balanced and interleaved.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "adaptation/dispatch_prompt.h"
#include "adaptation/task.h"

namespace t2::adaptation {

// The text pass 1 classifies for an example: its user message (what a client
// sends), without the task's system prompt.
std::string dispatch_request_text(const Example& example);

// Requests of `task` are labelled `label`: a category, or "other".
struct DispatchSource {
  const Task* task = nullptr;
  std::string label;
};

// Builds the task "dispatch". `per_source` caps the examples taken from each
// source per split (0: as many as the smallest source has, so classes are
// balanced). The metadata records the categories, so a classifier trained on it
// is refused by a Dispatcher with other categories. Throws t2::Error on an
// unknown label, a duplicate category or a source without examples.
Task dispatch_task(std::span<const DispatchCategory> categories,
                   std::span<const DispatchSource> sources, int per_source = 0);

// The categories a trained classifier's expert metadata records (empty when the
// expert was not trained on a dispatch task).
std::vector<DispatchCategory> classifier_categories(const nlohmann::json& training);

}  // namespace t2::adaptation
