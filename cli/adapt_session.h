// What `t2 generate --adapt` and `t2 eval-mixed --adapt` share: the options
// naming experts, classifier and SVF factors, and the setup that turns them into
// a Dispatcher (model, factors, experts checked against both, classifier and
// mixture loaded for the strategies that need them).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "adaptation/dispatcher.h"
#include "adaptation/registry.h"
#include "adaptation/task.h"

namespace t2::cli {

std::vector<std::string> split_list(const std::string& s);  // "a,b,,c" -> {a, b, c}

struct AdaptArgs {
  std::string experts, experts_dir = "experts", classifier;
  std::string matrix_set = "mlp", cache_dir, tasks_dir, data_root;
  int batch_size = 16;
};

// --experts-dir, --classifier, --matrix-set, --cache-dir, --tasks-dir,
// --data-root, --batch-size; --experts itself (required or not) is the caller's.
void add_adapt_options(CLI::App* cmd, AdaptArgs& a);

struct AdaptSession {
  std::shared_ptr<const backbone::Model> model;
  std::shared_ptr<const backbone::Svf> svf;
  std::vector<adaptation::LoadedExpert> experts;
  std::unique_ptr<adaptation::Dispatcher> dispatcher;
};

// Loads the model, its SVF factors and the experts of `expert_specs` (names or
// files), registers them with a Dispatcher and sets the classifier when given.
AdaptSession open_adapt_session(const std::string& model_path, const AdaptArgs& a,
                                const std::vector<std::string>& expert_specs);

// Readies the dispatcher for `spec`: a mixture file is loaded and checked
// against the registered experts; classifier dispatch needs --classifier.
void prepare_strategy(AdaptSession& s, const adaptation::AdaptSpec& spec, const AdaptArgs& a);

}  // namespace t2::cli
