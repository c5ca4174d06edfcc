// Shared setup of the --adapt commands (see adapt_session.h).
#include "adapt_session.h"

#include <sstream>

#include "backbone/expert.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::cli {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

void add_adapt_options(CLI::App* cmd, AdaptArgs& a) {
  cmd->add_option("--experts-dir", a.experts_dir, "Where expert names are looked up")
      ->capture_default_str();
  cmd->add_option("--classifier", a.classifier,
                  "Classification expert file (`t2 train --task dispatch`)");
  cmd->add_option("--matrix-set", a.matrix_set, "mlp, attn or all (as the experts)")
      ->check(CLI::IsMember({"mlp", "attn", "all"}));
  cmd->add_option("--cache-dir", a.cache_dir, "SVF factor cache (default T2_CACHE)");
  cmd->add_option("--tasks-dir", a.tasks_dir, "Task configs");
  cmd->add_option("--data-root", a.data_root, "Task data root");
  cmd->add_option("--batch-size", a.batch_size, "Requests per batch")->check(CLI::Range(1, 1024));
}

AdaptSession open_adapt_session(const std::string& model_path, const AdaptArgs& a,
                                const std::vector<std::string>& expert_specs) {
  AdaptSession s;
  s.model = backbone::Model::load(model_path);
  s.svf = backbone::Svf::open(*s.model, backbone::parse_matrix_set(a.matrix_set),
                              a.cache_dir.empty() ? backbone::default_cache_dir() : a.cache_dir);
  s.experts = adaptation::load_experts(expert_specs, a.experts_dir, *s.svf,
                                       {a.tasks_dir, a.data_root});
  s.dispatcher = std::make_unique<adaptation::Dispatcher>(
      s.model, s.svf, adaptation::registered(s.experts),
      adaptation::DispatchOptions{a.batch_size, adaptation::kClassifyMaxTokens});
  if (!a.classifier.empty())
    s.dispatcher->set_classifier(std::make_shared<backbone::Expert>(
        backbone::expert_load(a.classifier, *s.svf)));
  auto log = log::get("adapt");
  for (const auto& e : s.experts)
    log->info("expert {:<16} category {:<12} {}", e.registered.name, e.registered.category,
              e.path);
  return s;
}

void prepare_strategy(AdaptSession& s, const adaptation::AdaptSpec& spec, const AdaptArgs& a) {
  using adaptation::Strategy;
  if (spec.strategy == Strategy::kMix)
    s.dispatcher->set_mixture(adaptation::mixture_weights(spec.argument, *s.svf, s.experts));
  if (spec.strategy == Strategy::kClassifier && a.classifier.empty())
    fail("--adapt classifier needs --classifier FILE (an expert trained with "
         "`t2 train --task dispatch --experts ...`)");
  if ((spec.strategy == Strategy::kPrompt || spec.strategy == Strategy::kClassifier) &&
      s.experts.empty())
    fail("--adapt {} chooses among registered experts; give --experts",
         adaptation::strategy_name(spec.strategy));
}

}  // namespace t2::cli
