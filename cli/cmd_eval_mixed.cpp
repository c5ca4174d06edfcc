// `t2 eval-mixed`: two-pass evaluation over a mixed set of tasks. For every
// strategy asked for (none, prompt, classifier, mix:FILE, expert:NAME, oracle)
// prints accuracy per task with Wilson 95 % intervals, the dispatch confusion
// matrix of prompt / classifier, and pass-1 time as a share of pass-2 time.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

#include "adapt_session.h"
#include "adaptation/dispatch_task.h"
#include "adaptation/evaluate.h"
#include "commands.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::cli {

namespace {

struct MixedArgs {
  std::string model, tasks, adapt = "none,prompt,oracle", split = "validation";
  AdaptArgs common;
  int limit = 20, skip = 0;
};

struct Item {
  size_t task;
  adaptation::Example example;
};

void run_mixed(const MixedArgs& a) {
  const adaptation::TaskPaths paths{a.common.tasks_dir, a.common.data_root};
  std::vector<adaptation::Task> tasks;
  std::vector<Item> items;
  for (const auto& name : split_list(a.tasks)) {
    tasks.push_back(adaptation::Task::load(name, paths));
    auto ex = tasks.back().examples(adaptation::parse_split(a.split));
    ex.erase(ex.begin(), ex.begin() + std::ptrdiff_t(std::min(ex.size(), size_t(a.skip))));
    if (a.limit > 0 && ex.size() > size_t(a.limit)) ex.resize(size_t(a.limit));
    for (auto& e : ex) items.push_back({tasks.size() - 1, std::move(e)});
  }
  if (tasks.empty() || items.empty()) fail("--tasks: no examples to evaluate");
  const auto strategies = split_list(a.adapt);
  const auto expert_specs = split_list(a.common.experts);
  if (expert_specs.empty()) fail("--experts: give at least one expert name or file");

  AdaptSession session = open_adapt_session(a.model, a.common, expert_specs);
  auto& disp = *session.dispatcher;
  const auto& model = session.model;

  const auto& tok = model->tokenizer();
  std::vector<std::string> texts;
  std::vector<backbone::GenerationRequest> requests;
  for (const auto& it : items) {
    texts.push_back(adaptation::dispatch_request_text(it.example));
    backbone::GenerationRequest r;
    r.prompt = adaptation::prompt_ids(tok, it.example);
    r.max_tokens = tasks[it.task].max_new_tokens();
    r.sampling = {0.0f, 1.0f, 0};
    requests.push_back(std::move(r));
  }

  // correct[strategy][task]
  std::map<std::string, std::vector<int64_t>> correct;
  std::vector<int64_t> count(tasks.size(), 0);
  for (const auto& it : items) ++count[it.task];
  // A task whose category no registered expert has should be dispatched to "other".
  const auto known = disp.categories();
  auto true_class = [&](const adaptation::Task& t) {
    const std::string c = adaptation::dispatch_label(t.category());
    return std::find(known.begin(), known.end(), c) != known.end() ? c : std::string("other");
  };
  auto log = log::get("adapt");
  for (size_t si = 0; si < strategies.size(); ++si) {
    const std::string& s = strategies[si];
    log->info("eval-mixed: strategy {} ({}/{}): {} requests, both passes", s, si + 1,
              strategies.size(), items.size());
    std::vector<adaptation::Decision> d;
    if (s == "oracle") {  // the expert of each task's category, else base
      for (const auto& it : items)
        d.push_back(disp.decision_for_category(
            adaptation::Strategy::kExpert, adaptation::dispatch_label(tasks[it.task].category())));
    } else {
      const auto spec = adaptation::parse_adapt(s);
      prepare_strategy(session, spec, a.common);
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
      confusion[{true_class(tasks[items[i].task]), d[i].category}]++;
    }
    fmt::print("strategy {:<12} pass 1 {:.1f} s, pass 2 {:.1f} s, pass 1 / pass 2 = {:.1f} %\n",
               s, p1, p2, 100.0 * p1 / std::max(p2, 1e-9));
    log->info("eval-mixed: strategy {} done, pass 1 {:.1f} s, pass 2 {:.1f} s", s, p1, p2);
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
    std::fflush(stdout);  // each strategy's figures as soon as they exist
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
  cmd->add_option("--experts", a->common.experts, "Comma-separated expert names or files")
      ->required();
  cmd->add_option("--adapt", a->adapt,
                  "Comma-separated: none, prompt, classifier, expert:NAME, mix:FILE, oracle");
  cmd->add_option("--split", a->split, "Split")->check(
      CLI::IsMember({"train", "validation", "test"}));
  cmd->add_option("--skip", a->skip, "Skip the first N examples of each task's split")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--limit", a->limit, "Examples per task after --skip (0: all)");
  add_adapt_options(cmd, a->common);
  cmd->callback([a] { run_mixed(*a); });
}

}  // namespace t2::cli
