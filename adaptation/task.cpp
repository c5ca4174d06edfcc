// Task configs: TOML in, checked key by key (unknown keys are errors, so a typo
// cannot silently fall back to a default), then examples and scoring.
#include "adaptation/task.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "t2/error.h"

#ifndef T2_DEFAULT_TASKS_DIR
#define T2_DEFAULT_TASKS_DIR "configs/tasks"
#endif
#ifndef T2_DEFAULT_DATA_DIR
#define T2_DEFAULT_DATA_DIR "../shared/data"
#endif

namespace t2::adaptation {

namespace fs = std::filesystem;

namespace {

// Rejects keys of `table` not in `known`, naming the config and the table.
void check_keys(const toml::table& table, const std::set<std::string>& known,
                const std::string& origin, const std::string& where) {
  for (const auto& [key, value] : table) {
    if (!known.count(std::string(key.str()))) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail("{}: unknown key '{}{}' (known: {})", origin, where, key.str(), list);
    }
  }
}

template <typename T>
T get_or(const toml::table& table, const char* key, T fallback, const std::string& origin,
         const std::string& where) {
  const toml::node* node = table.get(key);
  if (!node) return fallback;
  auto value = node->value<T>();
  if (!value) fail("{}: key '{}{}' has the wrong type", origin, where, key);
  return *value;
}

std::string require_string(const toml::table& table, const char* key, const std::string& origin,
                           const std::string& where = "") {
  auto value = get_or<std::string>(table, key, "", origin, where);
  if (value.empty()) fail("{}: missing key '{}{}' (a non-empty string)", origin, where, key);
  return value;
}

const toml::table& subtable(const toml::table& root, const char* key, const std::string& origin) {
  static const toml::table empty;
  const toml::node* node = root.get(key);
  if (!node) return empty;
  if (!node->is_table()) fail("{}: '{}' should be a table ([{}])", origin, key, key);
  return *node->as_table();
}

std::string resolve(const std::string& data_root, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(data_root) / path).lexically_normal().string();
}

}  // namespace

Split parse_split(std::string_view name) {
  if (name == "train") return Split::kTrain;
  if (name == "validation" || name == "val") return Split::kValidation;
  if (name == "test") return Split::kTest;
  fail("unknown split '{}'; expected train, validation or test", name);
}

const char* split_name(Split split) {
  switch (split) {
    case Split::kTrain: return "train";
    case Split::kValidation: return "validation";
    case Split::kTest: return "test";
  }
  return "?";
}

std::string default_tasks_dir() {
  if (const char* env = std::getenv("T2_TASKS_DIR"); env && *env) return env;
  if (fs::is_directory("configs/tasks")) return "configs/tasks";
  return T2_DEFAULT_TASKS_DIR;
}

std::string default_data_root() {
  if (const char* env = std::getenv("T2_DATA_DIR"); env && *env) return env;
  return fs::path(T2_DEFAULT_DATA_DIR).lexically_normal().string();
}

std::vector<std::string> list_tasks(const std::string& tasks_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(tasks_dir, ec)) {
    if (entry.path().extension() == ".toml") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string render_template(std::string_view templ,
                            const std::map<std::string, std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < templ.size(); ++i) {
    const char c = templ[i];
    if ((c == '{' || c == '}') && i + 1 < templ.size() && templ[i + 1] == c) {
      out += c;
      ++i;
    } else if (c == '{') {
      const size_t close = templ.find('}', i);
      if (close == std::string_view::npos) fail("prompt template: unclosed '{{' at offset {}", i);
      const std::string key(templ.substr(i + 1, close - i - 1));
      auto it = fields.find(key);
      if (it == fields.end()) {
        std::string known;
        for (const auto& [k, v] : fields) known += (known.empty() ? "" : ", ") + k;
        fail("prompt template: unknown placeholder {{{}}} (this format has: {})", key, known);
      }
      out += it->second;
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

Task Task::load(const std::string& name_or_path, const TaskPaths& paths) {
  const std::string tasks_dir = paths.tasks_dir.empty() ? default_tasks_dir() : paths.tasks_dir;
  const std::string data_root = paths.data_root.empty() ? default_data_root() : paths.data_root;

  const bool is_path = name_or_path.find('/') != std::string::npos ||
                       fs::path(name_or_path).extension() == ".toml";
  const fs::path file =
      is_path ? fs::path(name_or_path) : fs::path(tasks_dir) / (name_or_path + ".toml");
  if (!fs::is_regular_file(file)) {
    if (is_path) fail("task config {} does not exist", file.string());
    std::string known;
    for (const auto& n : list_tasks(tasks_dir)) known += (known.empty() ? "" : ", ") + n;
    fail("unknown task '{}': no {} (known tasks: {}; --tasks-dir or T2_TASKS_DIR changes "
         "where they are looked up)", name_or_path, file.string(), known.empty() ? "none" : known);
  }

  std::ifstream in(file, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Task task = parse(text, file.string(), data_root);
  if (!is_path && task.name_ != name_or_path) {
    fail("{}: name = \"{}\" but the file is named {}.toml; a task is named after its file",
         file.string(), task.name_, name_or_path);
  }
  return task;
}

Task Task::parse(std::string_view toml_text, const std::string& origin,
                 const std::string& data_root) {
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    fail("{}:{}:{}: invalid TOML: {}", origin, at.line, at.column, e.description());
  }
  check_keys(root, {"name", "category", "description", "format", "answer", "labels",
                    "max_new_tokens", "on_bad_line", "data", "prompt", "reward", "sandbox"},
             origin, "");

  Task t;
  t.name_ = require_string(root, "name", origin);
  t.category_ = require_string(root, "category", origin);
  t.description_ = require_string(root, "description", origin);
  t.format_ = parse_record_format(require_string(root, "format", origin));
  t.answer_kind_ = parse_answer_kind(require_string(root, "answer", origin));
  t.max_new_tokens_ = int(get_or<int64_t>(root, "max_new_tokens", 256, origin, ""));
  if (t.max_new_tokens_ < 1 || t.max_new_tokens_ > 8192)
    fail("{}: max_new_tokens should be in [1, 8192], found {}", origin, t.max_new_tokens_);
  t.on_bad_line_ =
      parse_on_bad_line(get_or<std::string>(root, "on_bad_line", "reject", origin, ""));
  if (const toml::node* labels = root.get("labels")) {
    const toml::array* arr = labels->as_array();
    if (!arr) fail("{}: 'labels' should be an array of strings", origin);
    for (const auto& l : *arr) {
      auto s = l.value<std::string>();
      if (!s) fail("{}: 'labels' should be an array of strings", origin);
      t.labels_.push_back(canonical_label(*s));
    }
  }
  if (t.answer_kind_ == AnswerKind::kExact && t.labels_.empty())
    fail("{}: answer = \"exact\" needs labels = [...] (e.g. [\"yes\", \"no\"])", origin);

  // [data]: paths relative to the data root.
  const auto& data = subtable(root, "data", origin);
  check_keys(data, {"train", "validation", "test", "split"}, origin, "data.");
  t.train_path_ = resolve(data_root, require_string(data, "train", origin, "data."));
  t.validation_path_ =
      resolve(data_root, get_or<std::string>(data, "validation", "", origin, "data."));
  t.test_path_ = resolve(data_root, get_or<std::string>(data, "test", "", origin, "data."));
  const auto split = get_or<std::string>(data, "split", "even_odd", origin, "data.");
  if (split != "even_odd" && split != "files")
    fail("{}: data.split should be \"even_odd\" or \"files\", found \"{}\"", origin, split);
  t.even_odd_ = split == "even_odd";
  if (!t.even_odd_ && t.validation_path_.empty())
    fail("{}: data.split = \"files\" needs data.validation", origin);
  if (t.even_odd_ && !t.validation_path_.empty())
    fail("{}: data.validation is set but data.split = \"even_odd\" takes validation from the "
         "odd indices of data.train; use split = \"files\" or drop data.validation", origin);

  // [prompt]: checked now against the format's placeholders.
  const auto& prompt = subtable(root, "prompt", origin);
  check_keys(prompt, {"system", "user"}, origin, "prompt.");
  t.system_prompt_ = get_or<std::string>(prompt, "system", "", origin, "prompt.");
  t.user_template_ = require_string(prompt, "user", origin, "prompt.");
  std::map<std::string, std::string> probe;
  for (const auto& f : record_fields(t.format_)) probe[f] = "";
  try {
    render_template(t.system_prompt_, probe);
    render_template(t.user_template_, probe);
  } catch (const Error& e) {
    fail("{}: {}", origin, e.what());
  }

  const auto& reward = subtable(root, "reward", origin);
  check_keys(reward, {"correct", "wrong"}, origin, "reward.");
  t.reward_correct_ = float(get_or<double>(reward, "correct", 1.0, origin, "reward."));
  t.reward_wrong_ = float(get_or<double>(reward, "wrong", -1.0, origin, "reward."));

  const auto& sandbox = subtable(root, "sandbox", origin);
  check_keys(sandbox, {"cpu_seconds", "wall_seconds", "memory_mb", "require_no_network"},
             origin, "sandbox.");
  t.sandbox_.cpu_seconds = int(get_or<int64_t>(sandbox, "cpu_seconds", 5, origin, "sandbox."));
  t.sandbox_.wall_seconds = get_or<double>(sandbox, "wall_seconds", 10.0, origin, "sandbox.");
  t.sandbox_.memory_bytes = get_or<int64_t>(sandbox, "memory_mb", 512, origin, "sandbox.") << 20;
  t.sandbox_.require_no_network =
      get_or<bool>(sandbox, "require_no_network", false, origin, "sandbox.");
  return t;
}

Task Task::from_examples(BuiltTaskSpec spec) {
  if (spec.name.empty() || spec.category.empty())
    fail("built task: name and category are required");
  if (spec.train.empty() || spec.validation.empty())
    fail("built task {}: {} train and {} validation examples; both splits need some",
         spec.name, spec.train.size(), spec.validation.size());
  if (spec.max_new_tokens < 1 || spec.max_new_tokens > 8192)
    fail("built task {}: max_new_tokens should be in [1, 8192], found {}", spec.name,
         spec.max_new_tokens);
  Task t;
  t.built_ = true;
  t.even_odd_ = false;
  t.name_ = std::move(spec.name);
  t.category_ = std::move(spec.category);
  t.description_ = std::move(spec.description);
  t.answer_kind_ = spec.answer;
  t.labels_ = std::move(spec.labels);
  t.closed_completions_ = std::move(spec.closed_completions);
  t.max_new_tokens_ = spec.max_new_tokens;
  t.built_train_ = std::move(spec.train);
  t.built_validation_ = std::move(spec.validation);
  t.train_rule_ = std::move(spec.train_rule);
  t.validation_rule_ = std::move(spec.validation_rule);
  t.metadata_ = std::move(spec.metadata);
  return t;
}

bool Task::has_split(Split split) const {
  if (built_) return split != Split::kTest;
  return split != Split::kTest || !test_path_.empty();
}

std::string Task::data_path(Split split) const {
  switch (split) {
    case Split::kTrain: return train_path_;
    case Split::kValidation: return even_odd_ ? train_path_ : validation_path_;
    case Split::kTest: return test_path_;
  }
  return "";
}

std::string Task::split_rule(Split split) const {
  if (!has_split(split)) return "none";
  if (built_) return split == Split::kTrain ? train_rule_ : validation_rule_;
  if (even_odd_ && split == Split::kTrain) return "even indices of " + train_path_;
  if (even_odd_ && split == Split::kValidation) return "odd indices of " + train_path_;
  return "all of " + data_path(split);
}

std::vector<Example> Task::examples(Split split) const {
  if (!has_split(split))
    fail("task '{}' has no {} split (set data.test in its config)", name_, split_name(split));
  if (built_) return split == Split::kTrain ? built_train_ : built_validation_;
  const Dataset ds = read_dataset(data_path(split), format_, on_bad_line_);
  std::vector<Example> out;
  for (const auto& r : ds.records) {
    if (even_odd_ && split != Split::kTest && (r.index % 2 == 1) != (split == Split::kValidation))
      continue;
    out.push_back(make_example(r));
  }
  return out;
}

std::vector<Example> Task::examples_from_file(const std::string& path) const {
  const Dataset ds = read_dataset(path, format_, on_bad_line_);
  std::vector<Example> out;
  out.reserve(ds.records.size());
  for (const auto& r : ds.records) out.push_back(make_example(r));
  return out;
}

Example Task::make_example(const Record& r) const {
  Example e;
  e.id = r.id;
  e.index = r.index;
  if (!system_prompt_.empty())
    e.messages.push_back({"system", render_template(system_prompt_, r.fields)});
  e.messages.push_back({"user", render_template(user_template_, r.fields)});
  e.reference = r.reference;
  e.choices = r.choices;
  e.tests = r.tests;
  e.test_setup = r.test_setup;
  return e;
}

std::vector<int32_t> prompt_ids(const backbone::Tokenizer& tok, const Example& example) {
  return tok.encode(tok.apply_chat_template(example.messages, true) + example.answer_prefix);
}

Score Task::score(const Example& e, std::string_view completion_text) const {
  const std::string with_prefix =
      e.answer_prefix.empty() ? std::string() : e.answer_prefix + std::string(completion_text);
  const std::string_view completion = e.answer_prefix.empty() ? completion_text : with_prefix;
  Score s;
  switch (answer_kind_) {
    case AnswerKind::kNumeric: {
      auto number = extract_last_number(completion);
      s.extracted = number.value_or("");
      s.correct = number && numbers_equal(*number, e.reference);
      break;
    }
    case AnswerKind::kChoice: {
      std::vector<std::string> labels;
      for (const auto& c : e.choices) labels.push_back(c.label);
      auto label = extract_choice(completion, labels);
      s.extracted = label.value_or("");
      s.correct = label && *label == e.reference;
      break;
    }
    case AnswerKind::kExact: {
      auto label = extract_label(completion, labels_);
      s.extracted = label.value_or("");
      s.correct = label && *label == canonical_label(e.reference);
      break;
    }
    case AnswerKind::kBoxed: {  // references are stored lower-case, as parse_boxed returns
      s.extracted = parse_boxed(completion);
      s.correct = !s.extracted.empty() && s.extracted == e.reference;
      break;
    }
    case AnswerKind::kCode: {
      std::string program = extract_code(completion);
      if (!e.test_setup.empty()) program += "\n\n" + e.test_setup;
      program += "\n\n";
      for (const auto& t : e.tests) program += t + "\n";
      const SandboxResult run = run_python(program, sandbox_);
      s.extracted = run.summary();
      s.correct = run.status == SandboxStatus::kPassed;
      break;
    }
  }
  s.reward = s.correct ? reward_correct_ : reward_wrong_;
  return s;
}

}  // namespace t2::adaptation
