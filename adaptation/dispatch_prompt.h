// The classification prompt of pass 1 (docs/method.md §3) in one place: the
// Dispatcher asks it at run time and the dispatch task trains the classifier on
// it, so both see the very same text for the same categories and request.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backbone/tokenizer.h"

namespace t2::adaptation {

// One dispatch class: a registered expert's category and its one-line
// description (both from the task config the expert was trained on).
struct DispatchCategory {
  std::string name, description;
  bool operator==(const DispatchCategory&) const = default;
};

// A category as dispatch compares it: trimmed, lower-case (as parse_boxed reads).
std::string dispatch_label(std::string_view category);

// Pass-1 token budget: enough for "Classification: \boxed{reasoning}".
constexpr int kClassifyMaxTokens = 24;
// How pass 1's answer starts; the Dispatcher scores each "CATEGORY}" after it.
inline constexpr const char* kClassifyAnswerPrefix = "Classification: \\boxed{";

// The chat messages of pass 1 for one request: the categories in order, then
// "other", the request, and the answer format `Classification: \boxed{...}`.
std::vector<backbone::ChatMessage> classification_messages(
    std::span<const DispatchCategory> categories, std::string_view request);

}  // namespace t2::adaptation
