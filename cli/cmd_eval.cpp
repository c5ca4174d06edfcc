// `t2 eval`: accuracy of the backbone (or an expert) on a task's split, with
// counts and a Wilson 95 % interval. stdout carries the summary (or one JSON
// line with --json); progress goes to stderr through the "adapt" logger.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>

#include "adaptation/evaluate.h"
#include "adaptation/task.h"
#include "backbone/expert.h"
#include "backbone/model.h"
#include "backbone/safetensors.h"
#include "backbone/svf.h"
#include "backbone/svf_hook.h"
#include "commands.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::cli {

namespace {

struct EvalArgs {
  std::string model;
  std::string task;
  std::string split = "validation";
  std::string data;
  std::string expert;
  std::string cache;
  std::string tasks_dir;
  std::string data_root;
  std::string results;
  int limit = 0;
  int batch_size = 16;
  int max_new_tokens = 0;
  bool json = false;
};

void write_results(const std::string& path, const adaptation::EvalResult& r) {
  std::ofstream out(path);
  if (!out) fail("cannot write --results file {}", path);
  for (const auto& e : r.examples) {
    nlohmann::json j{{"id", e.id},           {"correct", e.correct},
                     {"extracted", e.extracted}, {"reference", e.reference},
                     {"finish", e.finish_reason}, {"tokens", e.generated_tokens},
                     {"completion", e.completion}};
    out << j.dump() << "\n";
  }
}

// The SVF hook running `path`'s expert on every sequence of a batch of up to
// `batch_size`. The SVF factors are opened for the matrix set the file names.
std::unique_ptr<backbone::SvfHook> expert_hook(const backbone::Model& model,
                                               const std::string& path,
                                               const std::string& cache, int batch_size) {
  const auto file = backbone::safetensors::File::open(path);
  const std::string* set_name = file.find_metadata("matrix_set");
  const auto set = backbone::parse_matrix_set(set_name ? *set_name : "mlp");
  auto svf = backbone::Svf::open(model, set, cache.empty() ? backbone::default_cache_dir() : cache);
  const backbone::Expert expert = backbone::expert_load(path, *svf);
  auto adapter = backbone::Adapter::from_expert(*svf, expert);
  log::get("adapt")->info("expert '{}' (task {}, {} matrices, validation accuracy {:.3f})",
                          expert.name, expert.task, backbone::matrix_set_name(set),
                          expert.validation_accuracy);
  auto hook = std::make_unique<backbone::SvfHook>(model, svf);
  // Every sequence runs the same adapter, so which request a batch sequence is
  // does not matter here.
  hook->set_adapters(std::vector<std::shared_ptr<const backbone::Adapter>>(
      size_t(batch_size), adapter));
  return hook;
}

void run_eval(const EvalArgs& a) {
  auto log = log::get("adapt");
  const adaptation::Task task = adaptation::Task::load(a.task, {a.tasks_dir, a.data_root});

  // The examples first: a bad split or dataset fails before the model loads.
  std::vector<adaptation::Example> examples;
  std::string source;
  if (!a.data.empty()) {
    examples = task.examples_from_file(a.data);
    source = "all of " + a.data;
  } else {
    const auto split = adaptation::parse_split(a.split);
    examples = task.examples(split);
    source = std::string(adaptation::split_name(split)) + " split, " + task.split_rule(split);
  }
  const size_t available = examples.size();
  if (a.limit > 0 && size_t(a.limit) < examples.size()) examples.resize(size_t(a.limit));
  if (examples.empty()) fail("no examples to evaluate in {}", source);

  auto model = backbone::Model::load(a.model);
  std::unique_ptr<backbone::SvfHook> hook;
  if (!a.expert.empty()) hook = expert_hook(*model, a.expert, a.cache, a.batch_size);
  log->info("eval {} ({}): {} examples of {} in {}; batch {}, up to {} new tokens, greedy",
            task.name(), task.category(), examples.size(), available, source, a.batch_size,
            a.max_new_tokens > 0 ? a.max_new_tokens : task.max_new_tokens());

  adaptation::EvalOptions options;
  options.batch_size = a.batch_size;
  options.max_new_tokens = a.max_new_tokens;
  options.hook = hook.get();
  options.label = task.name() + "/" + (a.data.empty() ? a.split : "data");
  const auto r = adaptation::evaluate(*model, task, examples, options);
  if (!a.results.empty()) write_results(a.results, r);

  if (a.json) {
    nlohmann::json j{{"task", task.name()},
                     {"category", task.category()},
                     {"split", a.data.empty() ? a.split : "data"},
                     {"source", source},
                     {"model", a.model},
                     {"expert", a.expert.empty() ? nlohmann::json() : nlohmann::json(a.expert)},
                     {"n", r.n},
                     {"correct", r.correct},
                     {"accuracy", r.accuracy},
                     {"ci95", {r.ci95.low, r.ci95.high}},
                     {"unanswered", r.unanswered},
                     {"truncated", r.truncated},
                     {"generated_tokens", r.generated_tokens},
                     {"seconds", r.seconds}};
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("task       {} ({}): {}\n", task.name(), task.category(), task.description());
  fmt::print("examples   {} of {} ({})\n", r.n, available, source);
  fmt::print("model      {}{}\n", a.model, a.expert.empty() ? "" : " + expert " + a.expert);
  fmt::print("accuracy   {:.1f} %  ({} / {} correct; 95 % Wilson interval {:.1f} - {:.1f} %)\n",
             100.0 * r.accuracy, r.correct, r.n, 100.0 * r.ci95.low, 100.0 * r.ci95.high);
  fmt::print("answers    {} without an extractable answer, {} cut at the token limit\n",
             r.unanswered, r.truncated);
  fmt::print("time       {:.1f} s, {} new tokens ({:.1f} tok/s)\n", r.seconds, r.generated_tokens,
             double(r.generated_tokens) / std::max(r.seconds, 1e-9));
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Accuracy on a task's split (or another data file)");
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("--model", a->model, "GGUF model file")->required();
  cmd->add_option("--task", a->task, "Task name (configs/tasks/<name>.toml) or a .toml path")
      ->required();
  cmd->add_option("--split", a->split, "train, validation or test")
      ->check(CLI::IsMember({"train", "validation", "test"}));
  cmd->add_option("--data", a->data, "Evaluate all records of this JSONL file (task's format)");
  cmd->add_option("--expert", a->expert, "SVF expert file to adapt the model with");
  cmd->add_option("--cache", a->cache, "SVF cache folder (default $T2_CACHE or ~/.cache/t2)");
  cmd->add_option("--limit", a->limit, "Only the first N examples")->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch-size", a->batch_size, "Sequences generated together")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--max-new-tokens", a->max_new_tokens, "Override the task's token budget")
      ->check(CLI::Range(0, 8192));
  cmd->add_option("--tasks-dir", a->tasks_dir, "Where task configs live (default: T2_TASKS_DIR "
                                               "or configs/tasks)");
  cmd->add_option("--data-root", a->data_root, "Root of task data paths (default: T2_DATA_DIR "
                                               "or ../shared/data)");
  cmd->add_option("--results", a->results, "Write one JSON line per example to this file");
  cmd->add_flag("--json", a->json, "Print one machine-readable summary line");
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace t2::cli
