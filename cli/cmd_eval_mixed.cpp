// `t2 eval-mixed`: two-pass evaluation over a mixed set of tasks. For every
// strategy asked for (none, prompt, classifier, mix:FILE, expert:NAME, oracle)
// prints accuracy per task with Wilson 95 % intervals, the dispatch confusion
// matrix of prompt / classifier, and pass-1 time as a share of pass-2 time.
#include <fmt/format.h>

#include <map>
#include <memory>
#include <sstream>

#include "adaptation/dispatcher.h"
#include "adaptation/evaluate.h"
#include "adaptation/mixture.h"
#include "adaptation/registry.h"
#include "commands.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::cli {

namespace {

struct MixedArgs {
  std::string model, tasks, experts, experts_dir = "experts", adapt = "none,prompt,oracle";
  std::string classifier, split = "validation", matrix_set = "mlp", cache_dir;
  std::string tasks_dir, data_root;
  int limit = 20, batch_size = 16;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

struct Item {
  size_t task;
  adaptation::Example example;
};

void run_mixed(const MixedArgs& a) {
  auto log = log::get("adapt");
  const adaptation::TaskPaths paths{a.tasks_dir, a.data_root};
  std::vector<adaptation::Task> tasks;
  std::vector<Item> items;
  for (const auto& name : split_list(a.tasks)) {
    tasks.push_back(adaptation::Task::load(name, paths));
    auto ex = tasks.back().examples(adaptation::parse_split(a.split));
    if (a.limit > 0 && ex.size() > size_t(a.limit)) ex.resize(size_t(a.limit));
    for (auto& e : ex) items.push_back({tasks.size() - 1, std::move(e)});
  }
  if (tasks.empty() || items.empty()) fail("--tasks: no examples to evaluate");
  const auto strategies = split_list(a.adapt);

  auto model = backbone::Model::load(a.model);
  auto svf = backbone::Svf::open(*model, backbone::parse_matrix_set(a.matrix_set),
                                 a.cache_dir.empty() ? backbone::default_cache_dir()
                                                     : a.cache_dir);
  const auto loaded = adaptation::load_experts(split_list(a.experts), a.experts_dir, *svf, paths);
  adaptation::Dispatcher disp(model, svf, adaptation::registered(loaded),
                              {a.batch_size, 24});
  std::vector<std::string> names;
  for (const auto& e : loaded) names.push_back(e.registered.name);
  if (!a.classifier.empty())
    disp.set_classifier(std::make_shared<backbone::Expert>(
        backbone::expert_load(a.classifier, *svf)));

  const auto& tok = model->tokenizer();
  std::vector<std::string> texts;
  std::vector<backbone::GenerationRequest> requests;
  for (const auto& it : items) {
    texts.push_back(it.example.messages.back().content);
    backbone::GenerationRequest r;
    r.prompt = tok.encode(tok.apply_chat_template(it.example.messages, true));
    r.max_tokens = tasks[it.task].max_new_tokens();
    r.sampling = {0.0f, 1.0f, 0};
    requests.push_back(std::move(r));
  }

  // correct[strategy][task]
  std::map<std::string, std::vector<int64_t>> correct;
  std::vector<int64_t> count(tasks.size(), 0);
  for (const auto& it : items) ++count[it.task];
  for (const auto& s : strategies) {
    std::vector<adaptation::Decision> d;
    if (s == "oracle") {  // the expert of each task's category, else base
      for (const auto& it : items)
        d.push_back(disp.decision_for_category(adaptation::Strategy::kExpert,
                                               tasks[it.task].category()));
    } else {
      const auto spec = adaptation::parse_adapt(s);
      if (spec.strategy == adaptation::Strategy::kMix) {
        const auto m = adaptation::mixture_load(spec.argument, *svf, {});
        std::vector<adaptation::MixtureWeight> w;
        for (size_t i = 0; i < m.experts.size(); ++i)
          w.push_back({m.experts[i].name, m.alpha[i],
                       m.slot_alpha.empty() ? std::vector<float>{} : m.slot_alpha[i]});
        disp.set_mixture(w);
      }
      d = disp.decide(spec, texts);
    }
    const auto out = disp.answer(requests, d);
    auto& c = correct[s];
    c.assign(tasks.size(), 0);
    double p1 = 0, p2 = 0;
    std::map<std::pair<std::string, std::string>, int> confusion;
    for (size_t i = 0; i < items.size(); ++i) {
      c[items[i].task] += tasks[items[i].task].score(items[i].example, out[i].text).correct;
      p1 += d[i].pass1_seconds;
      p2 += d[i].pass2_seconds;
      confusion[{tasks[items[i].task].category(), d[i].category}]++;
    }
    fmt::print("strategy {:<12} pass 1 {:.1f} s, pass 2 {:.1f} s, pass 1 / pass 2 = {:.1f} %\n",
               s, p1, p2, 100.0 * p1 / std::max(p2, 1e-9));
    if (s == "prompt" || s == "classifier") {
      int64_t hit = 0;
      for (const auto& [k, v] : confusion) {
        fmt::print("  confusion  true {:<16} -> chose {:<16} {:>5}\n", k.first, k.second, v);
        if (k.first == k.second) hit += v;
      }
      const auto ci = adaptation::wilson_interval(hit, int64_t(items.size()));
      fmt::print("  dispatch accuracy {:.1f} % ({} / {}; 95 % {:.1f} - {:.1f} %)\n",
                 100.0 * double(hit) / double(items.size()), hit, items.size(),
                 100.0 * ci.low, 100.0 * ci.high);
    }
  }

  fmt::print("\n{:<16}", "task");
  for (const auto& s : strategies) fmt::print(" {:>24}", s);
  fmt::print("\n");
  for (size_t t = 0; t < tasks.size(); ++t) {
    fmt::print("{:<16}", tasks[t].name());
    for (const auto& s : strategies) {
      const auto ci = adaptation::wilson_interval(correct[s][t], count[t]);
      fmt::print(" {:>24}", fmt::format("{:.1f} [{:.0f}-{:.0f}] n={}",
                                        100.0 * double(correct[s][t]) / double(count[t]),
                                        100.0 * ci.low, 100.0 * ci.high, count[t]));
    }
    fmt::print("\n");
  }
}

}  // namespace

void add_eval_mixed_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval-mixed", "Two-pass adaptation over a mixed set of tasks");
  auto a = std::make_shared<MixedArgs>();
  cmd->add_option("--model", a->model, "GGUF model file")->required();
  cmd->add_option("--tasks", a->tasks, "Comma-separated tasks")->required();
  cmd->add_option("--experts", a->experts, "Comma-separated expert names or files")->required();
  cmd->add_option("--experts-dir", a->experts_dir, "Where expert names are looked up");
  cmd->add_option("--adapt", a->adapt,
                  "Comma-separated: none, prompt, classifier, expert:NAME, mix:FILE, oracle");
  cmd->add_option("--classifier", a->classifier, "Classification expert file");
  cmd->add_option("--split", a->split, "Split")->check(
      CLI::IsMember({"train", "validation", "test"}));
  cmd->add_option("--limit", a->limit, "Examples per task (0: all)");
  cmd->add_option("--batch-size", a->batch_size, "Requests per batch")->check(CLI::Range(1, 1024));
  cmd->add_option("--matrix-set", a->matrix_set, "mlp, attn or all (as the experts)");
  cmd->add_option("--cache-dir", a->cache_dir, "SVF factor cache (default T2_CACHE)");
  cmd->add_option("--tasks-dir", a->tasks_dir, "Task configs");
  cmd->add_option("--data-root", a->data_root, "Task data root");
  cmd->callback([a] { run_mixed(*a); });
}

}  // namespace t2::cli
