// Spec checking and expansion (see job_spec.h). Each job type lists its fields
// with types, ranges and defaults; anything else in the spec is an error.
#include "coordinator/job_spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "adaptation/cem.h"
#include "t2/error.h"

namespace t2::coordinator {

using nlohmann::json;

std::string strategy_of(const std::string& model) {
  if (model == kModelBase) return "base";
  if (model == kModelAuto) return "prompt";
  return "expert";
}

uint32_t estimate_tokens(size_t bytes) { return uint32_t(std::max<size_t>(1, bytes / 4)); }

// ---- tasks ---------------------------------------------------------------------

TaskCatalog::TaskCatalog(adaptation::TaskPaths paths, std::vector<std::string> enabled)
    : paths_(std::move(paths)), enabled_(std::move(enabled)) {
  if (paths_.tasks_dir.empty()) paths_.tasks_dir = adaptation::default_tasks_dir();
  if (paths_.data_root.empty()) paths_.data_root = adaptation::default_data_root();
  if (enabled_.empty()) enabled_ = adaptation::list_tasks(paths_.tasks_dir);
}

std::vector<std::string> TaskCatalog::names() const { return enabled_; }

std::shared_ptr<const adaptation::Task> TaskCatalog::task(const std::string& name) const {
  if (std::find(enabled_.begin(), enabled_.end(), name) == enabled_.end())
    fail("unknown task '{}'; this service has: {}", name, fmt::join(enabled_, ", "));
  std::lock_guard lock(mutex_);
  auto it = tasks_.find(name);
  if (it != tasks_.end()) return it->second;
  auto task = std::make_shared<const adaptation::Task>(adaptation::Task::load(name, paths_));
  tasks_.emplace(name, task);
  return task;
}

const std::vector<adaptation::Example>& TaskCatalog::examples(const std::string& name,
                                                              adaptation::Split split) const {
  auto t = task(name);
  const std::string key = name + "/" + adaptation::split_name(split);
  {
    std::lock_guard lock(mutex_);
    auto it = examples_.find(key);
    if (it != examples_.end()) return *it->second;
  }
  if (!t->has_split(split))
    fail("task '{}' has no {} split", name, adaptation::split_name(split));
  auto loaded = std::make_shared<std::vector<adaptation::Example>>(t->examples(split));
  std::lock_guard lock(mutex_);
  return *examples_.emplace(key, loaded).first->second;  // a racing load keeps the first
}

// ---- fields ----------------------------------------------------------------------

namespace {

class Fields {
 public:
  Fields(const json& j, std::string where) : j_(j), where_(std::move(where)) {
    if (!j.is_object()) fail("{} must be a JSON object", where_);
  }

  bool has(const char* key) {
    known_.insert(key);
    return j_.contains(key) && !j_.at(key).is_null();
  }

  std::string text(const char* key, std::string fallback, bool required = false,
                   size_t max_bytes = 256) {
    if (!has(key)) {
      if (required) fail("{}.{} is required (a string)", where_, key);
      return fallback;
    }
    const json& v = j_.at(key);
    if (!v.is_string()) fail("{}.{} must be a string, found {}", where_, key, v.type_name());
    std::string s = v.get<std::string>();
    if (s.empty()) fail("{}.{} must not be empty", where_, key);
    if (s.size() > max_bytes) fail("{}.{} is longer than {} bytes", where_, key, max_bytes);
    return s;
  }

  int64_t integer(const char* key, int64_t fallback, int64_t low, int64_t high) {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number_integer())
      fail("{}.{} must be an integer, found {}", where_, key, v.type_name());
    const int64_t x = v.get<int64_t>();
    if (x < low || x > high) fail("{}.{} must be in {}..{}, found {}", where_, key, low, high, x);
    return x;
  }

  double number(const char* key, double fallback, double low, double high) {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number()) fail("{}.{} must be a number, found {}", where_, key, v.type_name());
    const double x = v.get<double>();
    if (!(x >= low && x <= high)) fail("{}.{} must be in [{}, {}], found {}", where_, key, low,
                                       high, x);
    return x;
  }

  bool boolean(const char* key, bool fallback) {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_boolean()) fail("{}.{} must be true or false, found {}", where_, key, v.type_name());
    return v.get<bool>();
  }

  std::vector<std::string> texts(const char* key, size_t min_count, size_t max_count,
                                 size_t max_bytes) {
    std::vector<std::string> out;
    if (!has(key)) return out;
    const json& v = j_.at(key);
    if (!v.is_array()) fail("{}.{} must be an array of strings, found {}", where_, key,
                            v.type_name());
    if (v.size() < min_count || v.size() > max_count)
      fail("{}.{} must hold {} to {} strings, found {}", where_, key, min_count, max_count,
           v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string())
        fail("{}.{}[{}] must be a string, found {}", where_, key, i, v[i].type_name());
      std::string s = v[i].get<std::string>();
      if (s.empty()) fail("{}.{}[{}] must not be empty", where_, key, i);
      if (s.size() > max_bytes) fail("{}.{}[{}] is longer than {} bytes", where_, key, i,
                                     max_bytes);
      out.push_back(std::move(s));
    }
    return out;
  }

  // Every key of the object must have been asked for.
  void done() const {
    for (const auto& [key, value] : j_.items())
      if (!known_.count(key))
        fail("{} has an unknown field '{}'; known: {}", where_, key, fmt::join(known_, ", "));
  }

 private:
  const json& j_;
  std::string where_;
  std::set<std::string> known_;
};

constexpr size_t kMaxPromptBytes = 32 << 10;
constexpr size_t kMaxPrompts = 10000;

std::string model_field(Fields& f, const SpecContext& ctx) {
  std::string model = f.text("model", kModelBase);
  if (model != kModelBase && model != kModelAuto && !(ctx.expert_exists && ctx.expert_exists(model)))
    fail("spec.model '{}' is neither '{}', '{}' nor a registered expert (GET /v1/experts)",
         model, kModelBase, kModelAuto);
  return model;
}

adaptation::Split split_field(Fields& f, const char* fallback) {
  const std::string name = f.text("split", fallback);
  if (name != "train" && name != "validation" && name != "test")
    fail("spec.split must be train, validation or test, found '{}'", name);
  return adaptation::parse_split(name);
}

size_t example_bytes(const adaptation::Example& e) {
  size_t n = 0;
  for (const auto& m : e.messages) n += m.content.size();
  return n;
}

void prepare_generate(Fields& f, PreparedJob& job, const SpecContext& ctx) {
  const auto prompts = f.texts("prompts", 1, kMaxPrompts, kMaxPromptBytes);
  if (prompts.empty()) fail("spec.prompts is required: an array of 1 to {} strings", kMaxPrompts);
  job.model = model_field(f, ctx);
  job.max_tokens = int(f.integer("max_tokens", 128, 1, 2048));
  job.temperature = f.number("temperature", 0.0, 0.0, 2.0);
  job.seed = uint64_t(f.integer("seed", 0, 0, INT64_MAX));
  job.chat = f.boolean("chat", true);
  const std::string label = f.text("task", "", false, 64);
  job.label = label.empty() ? "generate" : label;
  for (const auto& p : prompts)
    job.items.push_back({p, {}, label, "", -1, estimate_tokens(p.size())});
  job.spec = {{"prompts", prompts}, {"model", job.model}, {"max_tokens", job.max_tokens},
              {"temperature", job.temperature}, {"seed", job.seed}, {"chat", job.chat}};
  if (!label.empty()) job.spec["task"] = label;
}

void prepare_evaluate(Fields& f, PreparedJob& job, const SpecContext& ctx) {
  std::vector<std::string> tasks = f.texts("tasks", 1, 16, 64);
  if (f.has("task")) {
    if (!tasks.empty()) fail("spec has both task and tasks; give one");
    tasks.push_back(f.text("task", ""));
  }
  if (tasks.empty()) fail("spec.task (or spec.tasks) is required: the task(s) to evaluate");
  const auto split = split_field(f, "validation");
  const int64_t limit = f.integer("limit", 20, 1, 100000);
  const int64_t offset = f.integer("offset", 0, 0, 10000000);
  job.model = model_field(f, ctx);
  job.max_tokens = int(f.integer("max_tokens", 0, 0, 2048));
  job.label = tasks.size() == 1 ? tasks[0] : "mixed";

  // Interleave the tasks, so that every shard of a mixed run is mixed too.
  std::vector<const std::vector<adaptation::Example>*> lists;
  for (const auto& t : tasks) {
    const auto& examples = ctx.tasks->examples(t, split);
    if (int64_t(examples.size()) <= offset)
      fail("task '{}' has {} {} examples; offset {} leaves none", t, examples.size(),
           adaptation::split_name(split), offset);
    lists.push_back(&examples);
  }
  for (int64_t k = 0; k < limit; ++k) {
    bool any = false;
    for (size_t t = 0; t < tasks.size(); ++t) {
      const int64_t index = offset + k;
      if (index >= int64_t(lists[t]->size())) continue;
      any = true;
      job.items.push_back({"", {}, tasks[t], adaptation::split_name(split), index,
                           estimate_tokens(example_bytes((*lists[t])[size_t(index)]))});
    }
    if (!any) break;
  }
  job.spec = {{"tasks", tasks}, {"split", adaptation::split_name(split)}, {"limit", limit},
              {"offset", offset}, {"model", job.model}, {"max_tokens", job.max_tokens}};
}

void prepare_train(Fields& f, PreparedJob& job, const SpecContext& ctx) {
  TrainSettings& t = job.train;
  t.task = f.text("task", "", true, 64);
  auto task = ctx.tasks->task(t.task);
  t.expert = f.text("expert", t.task, false, 128);
  if (ctx.expert_exists && ctx.expert_exists(t.expert))
    fail("spec.expert '{}' is already registered; choose another name", t.expert);
  t.steps = uint32_t(f.integer("steps", 10, 1, 100000));
  t.prompts_per_step = uint32_t(f.integer("prompts_per_step", 8, 1, 1024));
  t.max_tokens = int(f.integer("max_tokens", 0, 0, 2048));
  t.learning_rate = f.number("learning_rate", 2e-3, 1e-8, 1.0);
  t.temperature = f.number("temperature", 1.0, 0.0, 2.0);
  t.clip = f.number("clip", 1e-3, 0.0, 1e6);
  t.kl = f.number("kl", 0.0, 0.0, 100.0);
  t.samples_per_prompt = int(f.integer("samples_per_prompt", 4, 1, 64));
  if (t.samples_per_prompt > 1 && t.temperature <= 0)
    fail("spec.samples_per_prompt {} needs spec.temperature > 0: greedy samples of one prompt "
         "are all the same", t.samples_per_prompt);
  t.checkpoint_every = int(f.integer("checkpoint_every", ctx.default_checkpoint_every, 1, 100000));
  t.seed = uint64_t(f.integer("seed", 0, 0, INT64_MAX));
  t.pool = f.integer("pool", 0, 0, 100000000);
  const auto& examples = ctx.tasks->examples(t.task, adaptation::Split::kTrain);
  if (examples.empty()) fail("task '{}' has no training examples", t.task);
  job.label = t.task;
  job.model = t.expert;
  job.max_tokens = t.max_tokens > 0 ? t.max_tokens : task->max_new_tokens();
  job.temperature = t.temperature;
  job.seed = t.seed;
  job.spec = {{"task", t.task}, {"expert", t.expert}, {"steps", t.steps},
              {"prompts_per_step", t.prompts_per_step}, {"max_tokens", t.max_tokens},
              {"learning_rate", t.learning_rate}, {"temperature", t.temperature},
              {"clip", t.clip}, {"kl", t.kl}, {"samples_per_prompt", t.samples_per_prompt},
              {"checkpoint_every", t.checkpoint_every}, {"seed", t.seed},
              {"pool", t.pool}};
}

void prepare_fewshot(Fields& f, PreparedJob& job, const SpecContext& ctx) {
  FewshotSettings& s = job.fewshot;
  s.task = f.text("task", "", true, 64);
  ctx.tasks->task(s.task);
  s.name = f.text("name", s.task + "-fewshot", false, 128);
  s.experts = f.texts("experts", 1, 16, 128);
  for (const auto& e : s.experts)
    if (!(ctx.expert_exists && ctx.expert_exists(e)))
      fail("spec.experts names '{}', which is not a registered expert", e);
  const auto split = split_field(f, "validation");
  s.split = adaptation::split_name(split);
  s.shots = int(f.integer("shots", 10, 1, 200));
  const auto cem = adaptation::cem_preset("small");
  s.population = int(f.integer("population", cem.population, 2, 256));
  s.generations = int(f.integer("generations", cem.generations, 1, 100));
  s.elites = int(f.integer("elites", cem.elites, 1, 256));
  if (s.elites > s.population) fail("spec.elites ({}) must not exceed spec.population ({})",
                                    s.elites, s.population);
  s.max_tokens = int(f.integer("max_tokens", 0, 0, 2048));
  s.seed = uint64_t(f.integer("seed", 0, 0, INT64_MAX));
  const auto& examples = ctx.tasks->examples(s.task, split);
  if (int64_t(examples.size()) < s.shots)
    fail("task '{}' has {} {} examples, fewer than {} shots", s.task, examples.size(), s.split,
         s.shots);
  job.label = s.task;
  job.model = kModelAuto;
  job.seed = s.seed;
  for (int k = 0; k < s.shots; ++k)
    job.items.push_back({"", {}, s.task, s.split, k,
                         estimate_tokens(example_bytes(examples[size_t(k)]))});
  job.spec = {{"task", s.task}, {"name", s.name}, {"experts", s.experts}, {"split", s.split},
              {"shots", s.shots}, {"population", s.population},
              {"generations", s.generations}, {"elites", s.elites},
              {"max_tokens", s.max_tokens}, {"seed", s.seed}};
}

}  // namespace

PreparedJob prepare_job(store::JobType type, const json& spec, const SpecContext& ctx) {
  PreparedJob job;
  job.type = type;
  Fields f(spec, "spec");
  switch (type) {
    case store::JobType::generate: prepare_generate(f, job, ctx); break;
    case store::JobType::evaluate: prepare_evaluate(f, job, ctx); break;
    case store::JobType::train: prepare_train(f, job, ctx); break;
    case store::JobType::fewshot: prepare_fewshot(f, job, ctx); break;
  }
  f.done();
  return job;
}

}  // namespace t2::coordinator
