// The pass-1 classification prompt; see dispatch_prompt.h.
#include "adaptation/dispatch_prompt.h"

#include "adaptation/answer.h"

namespace t2::adaptation {

std::string dispatch_label(std::string_view category) {
  return parse_boxed("\\boxed{" + std::string(category) + "}");
}

std::vector<backbone::ChatMessage> classification_messages(
    std::span<const DispatchCategory> categories, std::string_view request) {
  std::string text =
      "Analyze the given question and classify it into one of these categories:\n";
  for (const auto& c : categories) text += "- " + c.name + ": " + c.description + "\n";
  text += "- other: anything that fits none of the categories above.\n\n";
  text += "Question:\n";
  text += request;
  text += "\n\nDo not answer the question. Reply only as: Classification: \\boxed{category}";
  return {{"user", text}};
}

}  // namespace t2::adaptation
