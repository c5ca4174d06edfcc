// `t2 train`: trains an SVF expert for a task with REINFORCE (docs/method.md §2).
// A preset gives every setting; flags override single ones. Writes the best
// expert (--out), a CSV per step (--csv, default OUT.csv) and a resumable
// checkpoint (--checkpoint, default OUT.ckpt; --resume continues it).
// `--task dispatch --experts a,b,c` trains the classification expert of pass 1.
#include <fmt/format.h>

#include <memory>

#include "adapt_session.h"
#include "adaptation/dispatch_task.h"
#include "adaptation/registry.h"
#include "adaptation/task.h"
#include "adaptation/train_loop.h"
#include "backbone/expert.h"
#include "backbone/model.h"
#include "backbone/svf.h"
#include "commands.h"
#include "t2/error.h"

namespace t2::cli {

namespace {

struct TrainArgs {
  std::string model, task, out, csv, checkpoint, cache, tasks_dir, data_root;
  std::string experts, experts_dir = "experts", other_tasks;  // --task dispatch
  int per_task = 0;
  std::string preset = "small";
  std::string matrices = "mlp";
  std::string heldout_split = "validation";
  bool resume = false, cosine = false, eval_only = false;
  int heldout = 0;
  int steps = 0, batch = 0, samples = 0, validate_every = 0, val_examples = 0;
  int checkpoint_every = 0, max_new_tokens = 0;
  double lr = 0, kl = 0, clip = 0, temperature = 0;
  uint64_t seed = 0;
};

// Base model and the expert of `expert_path` on held-out examples: the validation
// split after the subset that chose the checkpoint, or the test split; the same
// examples for both, so the difference is paired.
void run_heldout(const TrainArgs& a, const adaptation::TrainOptions& o,
                 const adaptation::Task& task, const backbone::Model& model,
                 const std::shared_ptr<const backbone::Svf>& svf, const std::string& expert_path) {
  using adaptation::Split;
  const Split split = adaptation::parse_split(a.heldout_split);
  std::vector<adaptation::Example> examples = task.examples(split);
  std::string rule = task.split_rule(split);
  if (split == Split::kValidation) {
    if (o.validation_examples <= 0) {
      fail("--heldout on the validation split needs --val-examples > 0: with all of it used "
           "to choose the checkpoint nothing is left out");
    }
    const size_t skip = std::min(examples.size(), size_t(o.validation_examples));
    examples.erase(examples.begin(), examples.begin() + std::ptrdiff_t(skip));
    rule = fmt::format("{} after the first {} (those chose the checkpoint)", rule, skip);
  } else if (split == Split::kTrain) {
    fail("--heldout-split train: the training prompts are not held out");
  }
  if (a.heldout > 0 && size_t(a.heldout) < examples.size()) examples.resize(size_t(a.heldout));
  if (examples.empty()) fail("no held-out examples left in {}", rule);

  const backbone::Expert e = backbone::expert_load(expert_path, *svf);
  const auto base = adaptation::evaluate_p(model, svf, task, examples, {}, 16,
                                           task.name() + "/heldout base");
  const auto ours = adaptation::evaluate_p(model, svf, task, examples, e.p, 16,
                                           task.name() + "/heldout expert");
  int64_t only_base = 0, only_expert = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    only_base += base.examples[i].correct && !ours.examples[i].correct;
    only_expert += ours.examples[i].correct && !base.examples[i].correct;
  }
  fmt::print("held out     {} examples: {}\n", examples.size(), rule);
  for (const auto* r : {&base, &ours}) {
    fmt::print("{:<12} {:.1f} %  ({} / {}; 95 % Wilson {:.1f} - {:.1f} %; {} unanswered)\n",
               r == &base ? "base" : "expert", 100.0 * r->accuracy, r->correct, r->n,
               100.0 * r->ci95.low, 100.0 * r->ci95.high, r->unanswered);
  }
  fmt::print("paired       expert right where base wrong: {}, base right where expert wrong: {}\n",
             only_expert, only_base);
}

// The classification expert's task: the registered experts' categories (in
// --experts order, as the Dispatcher will list them), requests from each
// expert's task and from --other-tasks (labelled "other").
adaptation::Task dispatch_task(const TrainArgs& a, const backbone::Svf& svf) {
  const adaptation::TaskPaths paths{a.tasks_dir, a.data_root};
  const auto specs = split_list(a.experts);
  if (specs.empty())
    fail("--task dispatch needs --experts a,b,c: the experts whose categories it learns");
  const auto experts = adaptation::load_experts(specs, a.experts_dir, svf, paths);
  std::vector<adaptation::DispatchCategory> categories;
  std::vector<adaptation::Task> tasks;
  std::vector<std::string> labels;
  for (const auto& e : experts) {
    categories.push_back({e.registered.category, e.registered.description});
    tasks.push_back(adaptation::Task::load(e.registered.expert->task, paths));
    labels.push_back(e.registered.category);
  }
  for (const auto& name : split_list(a.other_tasks)) {
    tasks.push_back(adaptation::Task::load(name, paths));
    labels.push_back("other");
  }
  std::vector<adaptation::DispatchSource> sources;
  for (size_t i = 0; i < tasks.size(); ++i) sources.push_back({&tasks[i], labels[i]});
  return adaptation::dispatch_task(categories, sources, a.per_task);
}

void run_train(const TrainArgs& a, const CLI::App& cmd) {
  adaptation::TrainOptions o = adaptation::train_preset(a.preset);
  auto given = [&](const char* flag) { return cmd.count(flag) > 0; };
  if (given("--steps")) o.steps = a.steps;
  if (given("--batch")) o.batch_prompts = a.batch;
  if (given("--samples-per-prompt")) o.policy.samples_per_prompt = a.samples;
  if (given("--temperature")) o.policy.temperature = float(a.temperature);
  if (given("--lr")) o.adam.lr = a.lr;
  if (given("--kl")) o.policy.kl_coef = a.kl;
  if (given("--clip")) o.max_grad_norm = a.clip;
  if (given("--validate-every")) o.validate_every = a.validate_every;
  if (given("--val-examples")) o.validation_examples = a.val_examples;
  if (given("--checkpoint-every")) o.checkpoint_every = a.checkpoint_every;
  if (given("--max-new-tokens")) o.policy.max_new_tokens = a.max_new_tokens;
  if (a.cosine) o.cosine = true;
  o.seed = a.seed;
  // One sample per prompt has no group to take a mean over.
  if (o.policy.samples_per_prompt < 2) o.policy.group_baseline = false;

  if (a.task != "dispatch" && (!a.experts.empty() || !a.other_tasks.empty()))
    fail("--experts and --other-tasks are for --task dispatch (the classification expert)");
  auto model = backbone::Model::load(a.model);
  auto svf = backbone::Svf::open(*model, backbone::parse_matrix_set(a.matrices),
                                 a.cache.empty() ? backbone::default_cache_dir() : a.cache);
  const adaptation::Task task =
      a.task == "dispatch" ? dispatch_task(a, *svf)
                           : adaptation::Task::load(a.task, {a.tasks_dir, a.data_root});
  adaptation::TrainPaths paths{a.out, a.checkpoint.empty() ? a.out + ".ckpt" : a.checkpoint,
                               a.csv.empty() ? a.out + ".csv" : a.csv, a.resume};

  if (a.eval_only) {
    run_heldout(a, o, task, *model, svf, paths.expert);
    return;
  }
  const auto r = adaptation::train_expert(*model, svf, task, o, paths);
  fmt::print("task         {} ({})\n", task.name(), task.category());
  fmt::print("steps        {} ({} preset), {:.0f} s\n", r.steps_done, o.preset, r.seconds);
  fmt::print("validation   {:.1f} % before training, best {:.1f} % at step {} ({} examples: "
             "first {} of {})\n", 100.0 * r.initial_accuracy, 100.0 * r.best_accuracy,
             r.best_step, r.validation_n, r.validation_n,
             task.split_rule(adaptation::Split::kValidation));
  fmt::print("expert       {}\n", paths.expert);
  fmt::print("csv          {}\ncheckpoint   {}\n", paths.csv, paths.checkpoint);
  if (a.heldout != 0) run_heldout(a, o, task, *model, svf, paths.expert);
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train an SVF expert for a task (REINFORCE)");
  auto a = std::make_shared<TrainArgs>();
  cmd->add_option("--model", a->model, "GGUF model file")->required();
  cmd->add_option("--task", a->task,
                  "Task name (configs/tasks/<name>.toml), a .toml path, or dispatch")
      ->required();
  cmd->add_option("--out", a->out, "Expert file to write (the best validated p)")->required();
  cmd->add_option("--preset", a->preset, "reference (the paper's code) or small (2 CPU cores)")
      ->check(CLI::IsMember({"reference", "small"}))
      ->capture_default_str();
  cmd->add_option("--steps", a->steps, "Optimizer steps")->check(CLI::Range(1, 1000000));
  cmd->add_option("--batch", a->batch, "Prompts per step")->check(CLI::Range(1, 100000));
  cmd->add_option("--samples-per-prompt", a->samples, "Answers sampled per prompt (K)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--temperature", a->temperature, "Sampling temperature (0: greedy)")
      ->check(CLI::Range(0.0, 10.0));
  cmd->add_option("--lr", a->lr, "Adam learning rate")->check(CLI::PositiveNumber);
  cmd->add_option("--kl", a->kl, "KL coefficient lambda (reference model || policy)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--clip", a->clip, "Global gradient-norm clip (0: none)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--cosine", a->cosine, "Cosine decay of the learning rate to 0");
  cmd->add_option("--seed", a->seed, "Seed of p's init, batches and samples")
      ->capture_default_str();
  cmd->add_option("--validate-every", a->validate_every, "Validate every N steps")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--val-examples", a->val_examples,
                  "Validate on the first N examples of the validation split (0: all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-new-tokens", a->max_new_tokens, "Rollout token budget (0: the task's)")
      ->check(CLI::Range(0, 8192));
  cmd->add_option("--checkpoint", a->checkpoint, "Resumable state file (default OUT.ckpt)");
  cmd->add_option("--checkpoint-every", a->checkpoint_every, "Write the checkpoint every N steps")
      ->check(CLI::Range(1, 1000000));
  cmd->add_flag("--resume", a->resume, "Continue from the checkpoint when it exists");
  cmd->add_option("--csv", a->csv, "Per-step CSV (default OUT.csv)");
  cmd->add_option("--heldout", a->heldout,
                  "After training, evaluate base and expert on N held-out examples (-1: all)")
      ->check(CLI::Range(-1, 1000000));
  cmd->add_option("--heldout-split", a->heldout_split,
                  "validation (after the --val-examples subset) or test")
      ->check(CLI::IsMember({"validation", "test"}))
      ->capture_default_str();
  cmd->add_flag("--eval-only", a->eval_only,
                "Do not train: evaluate the existing --out expert on the held-out examples");
  cmd->add_option("--matrices", a->matrices, "Adapted matrices: mlp, attn or all")
      ->check(CLI::IsMember({"mlp", "attn", "all"}))
      ->capture_default_str();
  cmd->add_option("--cache", a->cache, "SVF cache folder (default $T2_CACHE or ~/.cache/t2)");
  cmd->add_option("--experts", a->experts,
                  "--task dispatch: the experts (names or files) whose categories to learn");
  cmd->add_option("--experts-dir", a->experts_dir, "Where expert names are looked up");
  cmd->add_option("--other-tasks", a->other_tasks,
                  "--task dispatch: tasks whose requests are labelled \"other\"");
  cmd->add_option("--per-task", a->per_task,
                  "--task dispatch: examples per task and split (0: balanced, the smallest)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--tasks-dir", a->tasks_dir, "Where task configs live");
  cmd->add_option("--data-root", a->data_root, "Root of task data paths");
  cmd->callback([a, cmd] { run_train(*a, *cmd); });
}

}  // namespace t2::cli
