// CEM over expert mixtures on the shots of one shard (see fewshot.h).
#include "worker/fewshot.h"

#include <chrono>

#include "adaptation/cem.h"
#include "adaptation/fewshot.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::worker {

using nlohmann::json;

json run_fewshot(Context& ctx, const json& body) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<adaptation::Example> shots;
  std::string task;
  for (const auto& item : body.at("items")) {
    task = item.at("task").get<std::string>();
    const auto& all = ctx.examples(task, adaptation::parse_split(item.at("split").get<std::string>()));
    const auto index = item.at("example").get<size_t>();
    if (index >= all.size()) fail("task {} has no example {}", task, index);
    shots.push_back(all[index]);
  }
  std::vector<std::string> names;
  std::vector<std::shared_ptr<const backbone::Expert>> experts;
  for (const auto& e : body.value("experts", json::array())) {
    names.push_back(e.at("name"));
    experts.push_back(ctx.expert(names.back()).expert);
  }
  if (experts.empty()) fail("few-shot mixing needs at least one expert");

  adaptation::ShotScorer scorer(ctx.model_ptr(), ctx.svf_ptr(), experts, shots);
  const json cem = body.value("cem", json::object());
  adaptation::CemOptions options = adaptation::cem_preset("small");
  options.population = cem.value("population", options.population);
  options.elites = cem.value("elites", options.elites);
  options.generations = cem.value("generations", options.generations);
  options.seed = cem.value("seed", uint64_t(0));
  const auto result = scorer.search(options);

  json alpha = json::object();
  for (size_t k = 0; k < names.size(); ++k) alpha[names[k]] = result.best[k];
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log::get("worker")->info("few-shot {}: {} shots, {} evaluations, fitness {:.4f} in {:.1f} s",
                           task, shots.size(), result.evaluations, result.best_fitness, seconds);
  return {{"placement", body.at("placement")},
          {"items", json::array()},
          {"seconds", seconds},
          {"output_tokens", 0},
          {"fewshot", {{"task", task},
                       {"alpha", alpha},
                       {"fitness", result.best_fitness},
                       {"fitness_per_generation", result.best_per_generation},
                       {"evaluations", result.evaluations},
                       {"shots", shots.size()}}}};
}

}  // namespace t2::worker
