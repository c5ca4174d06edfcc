// adaptation::Task — one task as configs/tasks/<name>.toml defines it: its
// dataset files and splits, chat prompt template, answer checking and reward.
// A Task is immutable after load and safe to share between threads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "adaptation/answer.h"
#include "adaptation/dataset.h"
#include "adaptation/sandbox.h"
#include "backbone/tokenizer.h"
#include "nlohmann/json.hpp"

namespace t2::adaptation {

// train: even indices of the training file; validation: odd ones (or a
// separate file); test: a held-out file, only for final figures.
enum class Split { kTrain, kValidation, kTest };
Split parse_split(std::string_view name);  // "train" | "validation" | "test"; throws
const char* split_name(Split split);

// Where task configs and datasets are looked up. Empty fields take the defaults.
struct TaskPaths {
  std::string tasks_dir;  // default_tasks_dir()
  std::string data_root;  // default_data_root()
};
// $T2_TASKS_DIR, else ./configs/tasks when present, else the source tree's.
std::string default_tasks_dir();
// $T2_DATA_DIR, else ../shared/data beside the repository this was built from.
std::string default_data_root();
// The *.toml names in a tasks dir, sorted ("arc_easy", "gsm8k", ...).
std::vector<std::string> list_tasks(const std::string& tasks_dir);

struct Example {
  std::string id;
  int64_t index = 0;                            // line index in its file
  std::vector<backbone::ChatMessage> messages;  // system (when set) + user
  // Text the assistant's turn starts with, part of the prompt (the dispatch
  // task's "Classification: \boxed{"); scoring reads it before the completion.
  std::string answer_prefix;
  std::string reference;
  std::vector<Choice> choices;
  std::vector<std::string> tests;
  std::string test_setup;
};

// The prompt token ids of an example: its chat, the assistant's turn opened,
// then its answer prefix.
std::vector<int32_t> prompt_ids(const backbone::Tokenizer& tok, const Example& example);

struct Score {
  bool correct = false;
  std::string extracted;  // what the completion answered ("" when nothing was found)
  float reward = 0.0f;
};

// A task built in code rather than read from a config (the dispatch
// classifier's): its examples per split are given, it has no test split.
struct BuiltTaskSpec {
  std::string name, category, description;
  AnswerKind answer = AnswerKind::kBoxed;
  std::vector<std::string> labels;
  // Non-empty: the only answers (completions after the answer prefix); they are
  // scored, not generated (closed_answers.h).
  std::vector<std::string> closed_completions;
  int max_new_tokens = 256;
  std::vector<Example> train, validation;
  std::string train_rule, validation_rule;  // where the examples came from, for logs
  nlohmann::json metadata = nlohmann::json::object();  // recorded in trained experts
};

class Task {
 public:
  // Throws t2::Error when a split is empty or a field is missing.
  static Task from_examples(BuiltTaskSpec spec);

  // Loads `name_or_path`: a path to a .toml file, or a task name looked up as
  // <tasks_dir>/<name>.toml. Throws t2::Error listing the known tasks when the
  // name is unknown, and naming the key when the config is wrong.
  static Task load(const std::string& name_or_path, const TaskPaths& paths = {});
  // Parses a config from text; `origin` names it in errors, `data_root` resolves
  // its relative data paths.
  static Task parse(std::string_view toml_text, const std::string& origin,
                    const std::string& data_root);

  const std::string& name() const { return name_; }
  const std::string& category() const { return category_; }
  const std::string& description() const { return description_; }
  RecordFormat format() const { return format_; }
  AnswerKind answer_kind() const { return answer_kind_; }
  OnBadLine on_bad_line() const { return on_bad_line_; }
  int max_new_tokens() const { return max_new_tokens_; }
  float reward_correct() const { return reward_correct_; }
  float reward_wrong() const { return reward_wrong_; }
  const SandboxLimits& sandbox() const { return sandbox_; }
  const std::vector<std::string>& labels() const { return labels_; }  // exact tasks
  // The closed answer set (BuiltTaskSpec::closed_completions); empty: free text.
  const std::vector<std::string>& closed_completions() const { return closed_completions_; }
  // What a trainer records in the expert it writes (empty for config tasks).
  const nlohmann::json& metadata() const { return metadata_; }

  bool has_split(Split split) const;
  std::string data_path(Split split) const;  // the file a split reads
  std::string split_rule(Split split) const;  // "odd indices of gsm8k/train.jsonl"

  // The examples of a split, in file order. Throws when the task has no such split.
  std::vector<Example> examples(Split split) const;
  // All records of another file in this task's format (`t2 eval --data`).
  std::vector<Example> examples_from_file(const std::string& path) const;
  Example make_example(const Record& record) const;

  // Extracts the answer from a completion and compares it with the reference;
  // code answers run in the sandbox.
  Score score(const Example& example, std::string_view completion) const;

 private:
  std::string name_, category_, description_;
  RecordFormat format_ = RecordFormat::kGsm8k;
  AnswerKind answer_kind_ = AnswerKind::kNumeric;
  OnBadLine on_bad_line_ = OnBadLine::kReject;
  int max_new_tokens_ = 256;
  float reward_correct_ = 1.0f;
  float reward_wrong_ = -1.0f;
  std::string system_prompt_, user_template_;
  std::string train_path_, validation_path_, test_path_;  // resolved; empty when absent
  bool even_odd_ = true;  // validation = odd indices of train_path_
  std::vector<std::string> labels_;
  std::vector<std::string> closed_completions_;
  SandboxLimits sandbox_;
  // Built tasks (from_examples): the examples themselves and their provenance.
  bool built_ = false;
  std::vector<Example> built_train_, built_validation_;
  std::string train_rule_, validation_rule_;
  nlohmann::json metadata_ = nlohmann::json::object();
};

// Fills {placeholders} of `templ` from `fields`; "{{" and "}}" are literal
// braces. Throws t2::Error naming an unknown placeholder.
std::string render_template(std::string_view templ,
                            const std::map<std::string, std::string>& fields);

}  // namespace t2::adaptation
