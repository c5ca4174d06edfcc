// Dispatch figures on the real backbone (label `model`): prompt-dispatch accuracy
// and confusion on a mixed validation set, end accuracy of base / prompt / oracle
// with Wilson intervals, pass-1 time as a share of pass 2, mixed-adapter vs
// one-expert throughput, and CEM wall time. Experts come from
// $T2_DISPATCH_EXPERTS (<task>.safetensors); skipped when absent.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "adaptation/cem.h"
#include "adaptation/dispatcher.h"
#include "adaptation/evaluate.h"
#include "adaptation/fewshot.h"
#include "adaptation/registry.h"

namespace t2::adaptation {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

TEST(DispatchModel, PromptDispatchAndCemFigures) {
  const std::string model_path = T2_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  const char* env = std::getenv("T2_DISPATCH_EXPERTS");
  const std::string dir = env ? env : "/tmp/t2disp/experts";
  if (!std::filesystem::exists(model_path) || !std::filesystem::exists(dir + "/gsm8k.safetensors"))
    GTEST_SKIP() << "needs " << model_path << " and experts in " << dir;
  const int per_task = std::getenv("T2_DISPATCH_N") ? std::atoi(std::getenv("T2_DISPATCH_N")) : 6;

  auto model = backbone::Model::load(model_path);
  auto svf = backbone::Svf::open(*model, backbone::MatrixSet::kMlp, backbone::default_cache_dir());
  const auto loaded = load_experts({"gsm8k", "arc_easy", "sst2"}, dir, *svf);
  Dispatcher disp(model, svf, registered(loaded), {16, 24});

  std::vector<Task> tasks;
  std::vector<std::pair<size_t, Example>> items;
  for (const char* name : {"gsm8k", "arc_easy", "sst2"}) {
    tasks.push_back(Task::load(name));
    auto ex = tasks.back().examples(Split::kValidation);
    ex.resize(size_t(per_task));
    for (auto& e : ex) items.push_back({tasks.size() - 1, e});
  }
  const auto& tok = model->tokenizer();
  std::vector<std::string> texts;
  std::vector<backbone::GenerationRequest> reqs;
  for (const auto& [t, e] : items) {
    texts.push_back(e.messages.back().content);
    backbone::GenerationRequest r;
    r.prompt = tok.encode(tok.apply_chat_template(e.messages, true));
    // LIMITATION (figures): pass 2 capped at 64 new tokens to fit CPU time.
    r.max_tokens = std::min(64, tasks[t].max_new_tokens());
    r.sampling = {0.0f, 1.0f, 0};
    reqs.push_back(std::move(r));
  }

  std::map<std::string, std::vector<Decision>> runs;
  runs["base"] = disp.decide({Strategy::kNone, ""}, texts);
  runs["prompt"] = disp.decide({Strategy::kPrompt, ""}, texts);
  for (const auto& [t, e] : items)
    runs["oracle"].push_back(disp.decision_for_category(Strategy::kExpert, tasks[t].category()));
  runs["one-expert"] = disp.decide({Strategy::kExpert, "gsm8k"}, texts);

  int hit = 0;
  std::map<std::pair<std::string, std::string>, int> confusion;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& truth = tasks[items[i].first].category();
    confusion[{truth, runs["prompt"][i].category}]++;
    hit += truth == runs["prompt"][i].category;
  }
  for (const auto& [k, v] : confusion)
    std::printf("confusion true %-15s -> %-15s %d\n", k.first.c_str(), k.second.c_str(), v);
  const auto dci = wilson_interval(hit, int64_t(items.size()));
  std::printf("prompt dispatch accuracy %d/%zu = %.1f %% [%.1f, %.1f]\n", hit, items.size(),
              100.0 * hit / double(items.size()), 100 * dci.low, 100 * dci.high);
  std::printf("example pass-1 text: %s\n", runs["prompt"][0].first_pass_text.c_str());

  for (auto& [name, dec] : runs) {
    const double t0 = now_s();
    const auto out = disp.answer(reqs, dec);
    const double wall = now_s() - t0;
    double p1 = 0, p2 = 0;
    std::vector<int> correct(tasks.size(), 0);
    for (size_t i = 0; i < items.size(); ++i) {
      correct[items[i].first] += tasks[items[i].first].score(items[i].second, out[i].text).correct;
      p1 += dec[i].pass1_seconds;
      p2 += dec[i].pass2_seconds;
    }
    std::printf("%-10s pass2 %.1f s (%.2f req/s), pass1 %.1f s = %.1f %% of pass 2 |", name.c_str(),
                wall, double(items.size()) / wall, p1, 100.0 * p1 / std::max(p2, 1e-9));
    for (size_t t = 0; t < tasks.size(); ++t) {
      const auto ci = wilson_interval(correct[t], per_task);
      std::printf(" %s %d/%d [%.0f-%.0f]", tasks[t].name().c_str(), correct[t], per_task,
                  100 * ci.low, 100 * ci.high);
    }
    std::printf("\n");
  }

  // CEM wall time at small settings; the per-evaluation cost scales to the reference.
  const Task arc = Task::load("arc_challenge");
  auto shots = arc.examples(Split::kTrain);
  shots.resize(4);
  std::vector<std::shared_ptr<const backbone::Expert>> ex;
  for (const auto& e : loaded) ex.push_back(e.registered.expert);
  ShotScorer scorer(model, svf, ex, shots);
  CemOptions o;
  o.population = 8;
  o.elites = 2;
  o.generations = 2;
  o.dim_groups = 3;
  const auto r = cem_search(scorer.genome_size(), [&](const auto& p) { return scorer.score(p); },
                            o);
  const double per_eval_shot = r.seconds / double(r.evaluations * 4);
  std::printf("CEM pop 8 x gen 2 x 4 shots: %.1f s (%.3f s per member-shot); reference "
              "32 x 50 x 10 would take ~%.0f s; best fitness %.4f\n", r.seconds, per_eval_shot,
              per_eval_shot * 32 * 50 * 10, r.best_fitness);
  EXPECT_EQ(r.best.size(), 3u);
}

}  // namespace
}  // namespace t2::adaptation
