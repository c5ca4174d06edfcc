// `t2 fewshot`: CEM over expert-mixture weights on a few labelled examples of a
// new task (docs/method.md §3); the found mixture is written as a mixture file
// that `--adapt mix:FILE` runs with. Prints the settings, the search time and
// the fitness of the base (uniform z) point, the initial mean and the best.
#include <fmt/format.h>

#include <memory>
#include <sstream>

#include "adaptation/cem.h"
#include "adaptation/fewshot.h"
#include "adaptation/mixture.h"
#include "adaptation/registry.h"
#include "backbone/svf.h"
#include "adapt_session.h"
#include "commands.h"
#include "t2/error.h"
#include "t2/log.h"

// LIMITATION: fitness is the mean answer log-likelihood only; the reference's
// accuracy-with-log-likelihood-tie-break needs a generation per (member, shot)
// and a --fitness accuracy option wiring evaluate() per population member.

namespace t2::cli {

namespace {

struct FewshotArgs {
  std::string model, task, experts, experts_dir = "experts", out, split = "train";
  std::string matrix_set = "mlp", cache_dir, tasks_dir, data_root;
  std::string preset = "small";
  int shots = 10, population = 0, elites = 0, generations = 0;  // 0: the preset's
  bool per_matrix = false;
  uint64_t seed = 0;
};

void run_fewshot(const FewshotArgs& a) {
  auto log = log::get("adapt");
  const adaptation::TaskPaths paths{a.tasks_dir, a.data_root};
  const auto task = adaptation::Task::load(a.task, paths);
  auto shots = task.examples(adaptation::parse_split(a.split));
  if (shots.empty()) fail("task {} has no {} examples for shots", task.name(), a.split);
  if (int(shots.size()) > a.shots) shots.resize(size_t(a.shots));
  const auto names = split_list(a.experts);
  if (names.empty()) fail("--experts: give at least one expert name or file");

  auto model = backbone::Model::load(a.model);
  auto svf = backbone::Svf::open(*model, backbone::parse_matrix_set(a.matrix_set),
                                 a.cache_dir.empty() ? backbone::default_cache_dir()
                                                     : a.cache_dir);
  const auto experts = adaptation::load_experts(names, a.experts_dir, *svf, paths);
  std::vector<std::shared_ptr<const backbone::Expert>> ex;
  for (const auto& e : experts) ex.push_back(e.registered.expert);

  adaptation::ShotScorer scorer(model, svf, ex, shots, a.per_matrix);
  adaptation::CemOptions o = adaptation::cem_preset(a.preset);
  if (a.population > 0) o.population = a.population;
  if (a.elites > 0) o.elites = a.elites;
  if (a.generations > 0) o.generations = a.generations;
  o.seed = a.seed;
  // The even mixture (every alpha 1/K, CEM's first mean) is scored for the report.
  o.initial_points = {std::vector<float>(size_t(scorer.genome_size()),
                                         float(1.0 / double(ex.size())))};
  log->info("fewshot {}: {} shots ({} split), {} experts, genome {}, population {}, elites {}, "
            "generations {}, fitness = mean answer log-likelihood", task.name(), shots.size(),
            a.split, ex.size(), scorer.genome_size(), o.population, o.elites, o.generations);

  const auto r = scorer.search(o);
  const double base = r.initial_fitness[0], init = r.initial_fitness[1];

  adaptation::Mixture m;
  m.task = task.name();
  m.model_sha256 = svf->model_sha256();
  m.set = svf->matrix_set();
  for (const auto& e : experts)
    m.experts.push_back({e.registered.name, e.path, backbone::file_sha256(e.path)});
  const size_t k = ex.size(), n = size_t(svf->n_slots());
  if (a.per_matrix) {
    m.alpha.assign(k, 1.0f);
    for (size_t i = 0; i < k; ++i)
      m.slot_alpha.emplace_back(r.best.begin() + long(i * n), r.best.begin() + long((i + 1) * n));
  } else {
    m.alpha = r.best;
  }
  m.search = {{"shots", shots.size()}, {"split", a.split}, {"population", o.population},
              {"elites", o.elites}, {"generations", o.generations}, {"preset", a.preset},
              {"seed", a.seed},
              {"fitness", "mean answer log-likelihood"}, {"best_fitness", r.best_fitness},
              {"initial_fitness", init}, {"base_fitness", base}, {"seconds", r.seconds}};
  adaptation::mixture_save(a.out, m);

  fmt::print("task       {} ({} shots from {})\n", task.name(), shots.size(), a.split);
  fmt::print("search     CEM pop {} elites {} generations {}: {:.1f} s, {} evaluations\n",
             o.population, o.elites, o.generations, r.seconds, r.evaluations);
  fmt::print("fitness    base weights (alpha = 0) {:.4f}, initial mean (alpha = 1/K) {:.4f}, "
             "best {:.4f}\n", base, init, r.best_fitness);
  if (std::all_of(r.best.begin(), r.best.end(), [](float x) { return x == 0.0f; }))
    fmt::print("           no mixture beats the base weights on these shots: the mixture "
               "runs the base model\n");
  if (!a.per_matrix)
    for (size_t i = 0; i < k; ++i)
      fmt::print("alpha      {:<20} {:.3f}\n", experts[i].registered.name, m.alpha[i]);
  fmt::print("written    {}\n", a.out);
}

}  // namespace

void add_fewshot_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("fewshot", "CEM search of an expert mixture for a new task");
  auto a = std::make_shared<FewshotArgs>();
  cmd->add_option("--model", a->model, "GGUF model file")->required();
  cmd->add_option("--task", a->task, "The new task (its labelled examples are the shots)")
      ->required();
  cmd->add_option("--experts", a->experts, "Comma-separated expert names or files")->required();
  cmd->add_option("--out", a->out, "Mixture file to write (JSON)")->required();
  cmd->add_option("--experts-dir", a->experts_dir, "Where expert names are looked up");
  cmd->add_option("--split", a->split, "Split the shots come from (first N examples)")
      ->check(CLI::IsMember({"train", "validation", "test"}));
  cmd->add_option("--shots", a->shots, "Labelled examples")->check(CLI::Range(1, 1000));
  cmd->add_option("--preset", a->preset,
                  "CEM settings: small (population 8, 3 elites, 4 generations) or reference "
                  "(32, 6, 50: the paper's code); the flags below override single ones")
      ->check(CLI::IsMember({"small", "reference"}));
  cmd->add_option("--population", a->population, "CEM population")->check(CLI::Range(2, 4096));
  cmd->add_option("--elites", a->elites, "CEM elites")->check(CLI::Range(1, 4096));
  cmd->add_option("--generations", a->generations, "CEM generations")
      ->check(CLI::Range(1, 10000));
  cmd->add_flag("--per-matrix", a->per_matrix, "Search alpha per expert and matrix");
  cmd->add_option("--seed", a->seed, "Random seed");
  cmd->add_option("--matrix-set", a->matrix_set, "mlp, attn or all (as the experts)");
  cmd->add_option("--cache-dir", a->cache_dir, "SVF factor cache (default T2_CACHE)");
  cmd->add_option("--tasks-dir", a->tasks_dir, "Task configs");
  cmd->add_option("--data-root", a->data_root, "Task data root");
  cmd->callback([a] { run_fewshot(*a); });
}

}  // namespace t2::cli
