// Job specs as clients submit them (DESIGN.md §5), checked field by field and
// expanded into what the coordinator schedules: the requests ("items") of an
// inference job, the settings of a training or few-shot job. A spec that
// passes here can run; one that does not gets a message naming the field.
// Normalized specs (defaults filled in) are what the store keeps.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "adaptation/task.h"
#include "store/records.h"

namespace t2::coordinator {

// What adapts a request: no expert, one named expert, or two-pass dispatch.
constexpr const char* kModelBase = "base";
constexpr const char* kModelAuto = "t2-auto";
std::string strategy_of(const std::string& model);  // "base", "expert", "prompt"

// Tasks and their examples, loaded once and shared (thread-safe).
class TaskCatalog {
 public:
  TaskCatalog(adaptation::TaskPaths paths, std::vector<std::string> enabled);
  // Throws t2::Error listing the enabled tasks when `name` is not one of them.
  std::shared_ptr<const adaptation::Task> task(const std::string& name) const;
  const std::vector<adaptation::Example>& examples(const std::string& task,
                                                   adaptation::Split split) const;
  std::vector<std::string> names() const;  // the enabled tasks
  const adaptation::TaskPaths& paths() const { return paths_; }

 private:
  adaptation::TaskPaths paths_;
  std::vector<std::string> enabled_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, std::shared_ptr<const adaptation::Task>> tasks_;
  mutable std::unordered_map<std::string, std::shared_ptr<std::vector<adaptation::Example>>>
      examples_;
};

// One request of an inference job.
struct Item {
  std::string prompt;      // generate: the text; evaluate: empty (the example is)
  nlohmann::json messages; // chat: [{"role", "content"}...] instead of a prompt
  std::string task;        // evaluate: the task; generate: the spec's optional label
  std::string split;       // evaluate: the split
  int64_t example = -1;    // evaluate: index into the split's examples
  uint32_t est_tokens = 1; // prompt tokens, estimated from its length
};

struct TrainSettings {
  std::string task, expert;
  uint32_t steps = 10, prompts_per_step = 8;
  int max_tokens = 0;  // 0: the task's
  double learning_rate = 2e-3, temperature = 1.0, clip = 1e-3, kl = 0.0;
  int samples_per_prompt = 4;  // > 1: advantages against the prompt's group mean
  int checkpoint_every = 2;
  uint64_t seed = 0;
  int64_t pool = 0;  // training examples drawn from (0: the whole train split)
};

struct FewshotSettings {
  std::string task, name, split = "validation";
  std::vector<std::string> experts;
  int shots = 10, population = 0, generations = 0, elites = 0;  // parsed: cem_preset("small")
  int max_tokens = 0;
  uint64_t seed = 0;
};

struct PreparedJob {
  store::JobType type = store::JobType::generate;
  nlohmann::json spec;  // normalized
  std::string model = kModelBase;  // inference: base, t2-auto or an expert
  std::string label;               // the scheduler's task name: a task, or "mixed"
  int max_tokens = 128;
  double temperature = 0;
  uint64_t seed = 0;
  bool chat = true;
  std::vector<Item> items;
  TrainSettings train;
  FewshotSettings fewshot;
};

struct SpecContext {
  const TaskCatalog* tasks = nullptr;
  std::function<bool(const std::string&)> expert_exists;
  int default_checkpoint_every = 2;
};

// Throws t2::Error saying which field is wrong and what it expected.
PreparedJob prepare_job(store::JobType type, const nlohmann::json& spec, const SpecContext& ctx);

// Rough prompt tokens of a text (the scheduler's estimate; ~4 bytes a token).
uint32_t estimate_tokens(size_t bytes);

}  // namespace t2::coordinator
