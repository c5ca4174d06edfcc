// Dispatch training data: balanced, interleaved classification prompts built
// with the Dispatcher's own prompt function.
#include "adaptation/dispatch_task.h"

#include <algorithm>
#include <set>

#include <fmt/ranges.h>

#include "t2/error.h"
#include "t2/log.h"

namespace t2::adaptation {

std::string dispatch_request_text(const Example& example) {
  for (auto it = example.messages.rbegin(); it != example.messages.rend(); ++it)
    if (it->role == "user") return it->content;
  fail("example {} has no user message to classify", example.id);
}

namespace {

// Round-robin over the sources, at most `cap` of each: the first N of the result
// (what validation subsets take) hold every class.
std::vector<Example> interleave(const std::vector<std::vector<Example>>& per_source,
                                size_t cap) {
  std::vector<Example> out;
  for (size_t i = 0; i < cap; ++i)
    for (const auto& v : per_source)
      if (i < v.size()) out.push_back(v[i]);
  return out;
}

size_t balanced_cap(const std::vector<std::vector<Example>>& per_source, int per_source_max) {
  size_t cap = per_source.front().size();
  for (const auto& v : per_source) cap = std::min(cap, v.size());
  return per_source_max > 0 ? std::min(cap, size_t(per_source_max)) : cap;
}

}  // namespace

Task dispatch_task(std::span<const DispatchCategory> categories,
                   std::span<const DispatchSource> sources, int per_source) {
  if (categories.empty()) fail("dispatch task: no categories (give --experts)");
  if (sources.empty()) fail("dispatch task: no source tasks");
  std::vector<DispatchCategory> cats;
  std::set<std::string> known = {"other"};
  for (const auto& c : categories) {
    DispatchCategory n{dispatch_label(c.name), c.description};
    if (n.name.empty() || n.name == "other")
      fail("dispatch task: category '{}' is empty or reserved", c.name);
    if (!known.insert(n.name).second)
      fail("dispatch task: category '{}' is given twice; one expert per category", n.name);
    cats.push_back(std::move(n));
  }

  nlohmann::json meta{{"kind", "dispatch"}};
  for (const auto& c : cats)
    meta["dispatch_categories"].push_back({{"name", c.name}, {"description", c.description}});

  std::vector<std::vector<Example>> train, val;
  std::vector<std::string> labels;
  for (const auto& src : sources) {
    const std::string label = dispatch_label(src.label);
    if (!known.count(label))
      fail("dispatch task: task {} is labelled '{}', which is no category (known: {})",
           src.task->name(), label, fmt::join(known, ", "));
    if (std::find(labels.begin(), labels.end(), label) == labels.end()) labels.push_back(label);
    meta["sources"].push_back({{"task", src.task->name()}, {"label", label}});
    for (Split split : {Split::kTrain, Split::kValidation}) {
      auto& out = (split == Split::kTrain ? train : val).emplace_back();
      for (const Example& e : src.task->examples(split)) {
        Example d;
        d.id = src.task->name() + ":" + e.id;
        d.index = e.index;
        d.messages = classification_messages(cats, dispatch_request_text(e));
        d.answer_prefix = kClassifyAnswerPrefix;  // as pass 1 scores it
        d.reference = label;
        out.push_back(std::move(d));
      }
      if (out.empty())
        fail("dispatch task: task {} has no {} examples", src.task->name(), split_name(split));
    }
  }

  BuiltTaskSpec spec;
  spec.name = "dispatch";
  spec.category = "dispatch";
  spec.description = "Classify a request into the registered experts' categories.";
  spec.answer = AnswerKind::kBoxed;
  spec.labels = labels;
  // Pass 1 scores every category after the answer prefix; so do training and
  // validation, over the same candidates.
  for (const auto& c : cats) spec.closed_completions.push_back(c.name + "}");
  spec.closed_completions.push_back("other}");
  spec.max_new_tokens = kClassifyMaxTokens;
  const size_t train_cap = balanced_cap(train, per_source);
  const size_t val_cap = balanced_cap(val, per_source);
  spec.train = interleave(train, train_cap);
  spec.validation = interleave(val, val_cap);
  spec.train_rule = fmt::format("{} per task of {} tasks' train splits, interleaved", train_cap,
                                sources.size());
  spec.validation_rule = fmt::format("{} per task of {} tasks' validation splits, interleaved",
                                     val_cap, sources.size());
  meta["per_source_train"] = train_cap;
  meta["per_source_validation"] = val_cap;
  spec.metadata = std::move(meta);
  log::get("adapt")->info("dispatch task: {} categories + other, {} train / {} validation "
                          "examples", cats.size(), spec.train.size(), spec.validation.size());
  return Task::from_examples(std::move(spec));
}

std::vector<DispatchCategory> classifier_categories(const nlohmann::json& training) {
  std::vector<DispatchCategory> out;
  const auto it = training.find("task_metadata");
  if (it == training.end() || !it->is_object() || !it->contains("dispatch_categories"))
    return out;
  for (const auto& c : (*it)["dispatch_categories"])
    out.push_back({c.value("name", ""), c.value("description", "")});
  return out;
}

}  // namespace t2::adaptation
