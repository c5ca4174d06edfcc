// The training run (train_loop.h): resolve state (fresh or checkpoint), then per
// step draw the batch, let the Trainer compute the gradient, apply Adam, validate
// when due, write CSV, expert and checkpoint.
#include "adaptation/train_loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>
#include <sstream>

#include "adaptation/evaluate.h"
#include "adaptation/train_checkpoint.h"
#include "backbone/expert.h"
#include "backbone/svf_hook.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::adaptation {

namespace bb = backbone;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t mix_seed(uint64_t seed, uint64_t salt) {
  uint64_t x = seed ^ (salt * 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

constexpr const char* kCsvHeader =
    "step,reward,train_accuracy,loss,pg_loss,kl_per_token,grad_norm,lr,samples,trained,"
    "response_tokens,val_accuracy,rollout_s,gradient_s,step_s";

// Keeps the header and the rows of steps <= last_step (a resume rewrites the tail).
void csv_truncate(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  if (!in) return;
  std::vector<std::string> keep;
  std::string line;
  while (std::getline(in, line)) {
    if (keep.empty()) {
      keep.push_back(line);
      continue;
    }
    try {
      if (std::stoll(line.substr(0, line.find(','))) <= last_step) keep.push_back(line);
    } catch (const std::exception&) {
    }
  }
  in.close();
  std::ofstream out(path, std::ios::trunc);
  for (const auto& l : keep) out << l << "\n";
}

}  // namespace

std::vector<std::string> train_preset_names() { return {"reference", "small"}; }

TrainOptions train_preset(const std::string& name) {
  TrainOptions o;
  o.preset = name;
  if (name == "reference") {
    o.batch_prompts = 256;
    o.policy.samples_per_prompt = 1;
    o.policy.temperature = 0.0f;  // greedy
    o.policy.group_baseline = false;
    o.policy.kl_coef = 0.0;
    o.adam.lr = 2e-3;
    o.max_grad_norm = 1e-3;
    o.steps = 40;
    o.validate_every = 10;
    o.validation_examples = 0;
  } else if (name == "small") {
    o.batch_prompts = 8;
    o.policy.samples_per_prompt = 4;
    o.policy.temperature = 1.0f;
    o.policy.group_baseline = true;
    o.policy.kl_coef = 0.0;
    o.adam.lr = 5e-3;
    o.max_grad_norm = 1e-3;  // with Adam only the direction matters; kept as the reference
    o.steps = 30;
    o.validate_every = 5;
    o.validation_examples = 64;
  } else {
    fail("unknown training preset '{}'; known: reference, small", name);
  }
  return o;
}

nlohmann::json train_settings_json(const TrainOptions& o) {
  return {{"algorithm", "reinforce"},
          {"preset", o.preset},
          {"steps", o.steps},
          {"batch_prompts", o.batch_prompts},
          {"samples_per_prompt", o.policy.samples_per_prompt},
          {"temperature", o.policy.temperature},
          {"top_p", o.policy.top_p},
          {"group_baseline", o.policy.group_baseline},
          {"kl_coef", o.policy.kl_coef},
          {"max_new_tokens", o.policy.max_new_tokens},
          {"optimizer", o.adam.weight_decay > 0 ? "adamw" : "adam"},
          {"lr", o.adam.lr},
          {"beta1", o.adam.beta1},
          {"beta2", o.adam.beta2},
          {"eps", o.adam.eps},
          {"weight_decay", o.adam.weight_decay},
          {"cosine", o.cosine},
          {"max_grad_norm", o.max_grad_norm},
          {"validate_every", o.validate_every},
          {"validation_examples", o.validation_examples},
          {"seed", o.seed}};
}

std::vector<size_t> batch_indices(size_t n_train, int batch, uint64_t seed, int64_t step) {
  if (n_train == 0) fail("no training examples to draw a batch from");
  std::vector<size_t> out;
  std::vector<size_t> perm;
  int64_t perm_epoch = -1;
  for (int j = 0; j < batch; ++j) {
    const int64_t pos = step * batch + j;
    const int64_t epoch = pos / int64_t(n_train);
    if (epoch != perm_epoch) {
      perm.resize(n_train);
      for (size_t i = 0; i < n_train; ++i) perm[i] = i;
      std::mt19937_64 rng(mix_seed(seed, uint64_t(epoch) + 1));
      std::shuffle(perm.begin(), perm.end(), rng);
      perm_epoch = epoch;
    }
    out.push_back(perm[size_t(pos % int64_t(n_train))]);
  }
  return out;
}

EvalResult evaluate_p(const bb::Model& model, const std::shared_ptr<const bb::Svf>& svf,
                      const Task& task, std::span<const Example> examples,
                      std::span<const float> p, int batch_size, const std::string& label) {
  EvalOptions options;
  options.batch_size = batch_size;
  options.label = label;
  if (p.empty()) return evaluate(model, task, examples, options);
  std::vector<float> z(p.size());
  for (size_t i = 0; i < p.size(); ++i) z[i] = sigmoid(p[i]);
  auto adapter = bb::Adapter::from_z(*svf, std::move(z), label);
  bb::SvfHook hook(model, svf);
  hook.set_adapters(
      std::vector<std::shared_ptr<const bb::Adapter>>(size_t(batch_size), adapter));
  options.hook = &hook;
  return evaluate(model, task, examples, options);
}

double validation_accuracy(const bb::Model& model, const std::shared_ptr<const bb::Svf>& svf,
                           const Task& task, std::span<const Example> examples,
                           std::span<const float> p, int batch_size) {
  return evaluate_p(model, svf, task, examples, p, batch_size, task.name() + "/validation")
      .accuracy;
}

TrainReport train_expert(const bb::Model& model, std::shared_ptr<const bb::Svf> svf,
                         const Task& task, const TrainOptions& o, const TrainPaths& paths) {
  auto log = log::get("adapt");
  const auto t_start = std::chrono::steady_clock::now();
  if (o.steps < 1 || o.batch_prompts < 1) {
    fail("training needs steps >= 1 and batch >= 1, found {} and {}", o.steps, o.batch_prompts);
  }
  if (o.validate_every < 1 || o.checkpoint_every < 1) {
    fail("validate_every and checkpoint_every should be >= 1, found {} and {}", o.validate_every,
         o.checkpoint_every);
  }
  const nlohmann::json settings = train_settings_json(o);

  // Data: train prompts; a fixed subset of the validation split for early stopping.
  const std::vector<Example> train = task.examples(Split::kTrain);
  std::vector<Example> val = task.examples(Split::kValidation);
  if (o.validation_examples > 0 && size_t(o.validation_examples) < val.size()) {
    val.resize(size_t(o.validation_examples));
  }
  if (train.empty() || val.empty()) {
    fail("task {}: {} train and {} validation examples; both are needed", task.name(),
         train.size(), val.size());
  }
  log->info("train {}: {} train prompts ({}), validation on the first {} of {}", task.name(),
            train.size(), task.split_rule(Split::kTrain), val.size(),
            task.split_rule(Split::kValidation));
  for (const auto& [key, value] : settings.items()) log->info("  {:<20} {}", key, value.dump());

  // State: from the checkpoint, or fresh.
  TrainReport report;
  report.validation_n = int64_t(val.size());
  TrainCheckpoint state;
  Adam adam(svf->total_rank(), o.adam);
  const bool resuming = paths.resume && !paths.checkpoint.empty() &&
                        std::filesystem::exists(paths.checkpoint);
  if (resuming) {
    state = checkpoint_load(paths.checkpoint, *svf);
    if (state.task != task.name()) {
      fail("{}: checkpoint of task {}, not {}", paths.checkpoint, state.task, task.name());
    }
    nlohmann::json a = state.settings, b = settings;
    a.erase("steps");
    b.erase("steps");
    a.erase("initial_validation_accuracy");
    if (a != b) {
      log->warn("resuming with settings that differ from the checkpoint's: {} vs {}", b.dump(),
                a.dump());
    }
    adam.restore(state.adam_m, state.adam_v, state.adam_steps);
    report.initial_accuracy = state.settings.value("initial_validation_accuracy", 0.0);
    log->info("resumed {} at step {} (best validation {:.1f} % at step {})", paths.checkpoint,
              state.step, 100.0 * state.best_accuracy, state.best_step);
  } else {
    state.task = task.name();
    state.base_model_sha256 = svf->model_sha256();
    state.set = svf->matrix_set();
    state.seed = o.seed;
    state.p = bb::expert_init(*svf, task.name(), task.name(), o.seed).p;
    state.best_p = state.p;
  }
  state.settings = settings;
  if (state.seed != o.seed && resuming) {
    log->warn("the checkpoint's seed {} continues (--seed {} ignored)", state.seed, o.seed);
  }
  const uint64_t seed = state.seed;

  auto save_expert = [&] {
    bb::Expert e;
    e.name = task.name();
    e.task = task.name();
    e.base_model_sha256 = svf->model_sha256();
    e.set = svf->matrix_set();
    e.p = state.best_p;
    e.training = settings;
    e.training["best_step"] = state.best_step;
    e.training["steps_done"] = state.step;
    e.training["validation_n"] = val.size();
    e.training["validation_rule"] =
        fmt::format("first {} of {}", val.size(), task.split_rule(Split::kValidation));
    e.training["initial_validation_accuracy"] = report.initial_accuracy;
    if (!task.metadata().empty()) e.training["task_metadata"] = task.metadata();
    e.validation_accuracy = state.best_accuracy;
    e.created = bb::utc_now_iso8601();
    bb::expert_save(paths.expert, e, *svf);
  };
  auto validate = [&](std::span<const float> p) {
    return validation_accuracy(model, svf, task, val, p, o.validation_batch);
  };

  // CSV: fresh, or the rows up to the checkpoint's step.
  if (!paths.csv.empty()) {
    if (resuming) csv_truncate(paths.csv, state.step);
    if (!resuming || !std::filesystem::exists(paths.csv)) {
      std::ofstream(paths.csv, std::ios::trunc) << kCsvHeader << "\n";
    }
  }
  std::ofstream csv;
  if (!paths.csv.empty()) {
    csv.open(paths.csv, std::ios::app);
    if (!csv) fail("cannot write the CSV file {}", paths.csv);
  }

  // Step 0: the initial p's accuracy is the bar every later checkpoint must beat.
  if (state.best_accuracy < 0.0) {
    const double acc = validate(state.p);
    state.best_accuracy = acc;
    state.best_step = 0;
    state.best_p = state.p;
    report.initial_accuracy = acc;
    log->info("step 0: validation {:.1f} % ({} examples)", 100.0 * acc, val.size());
    if (csv) csv << fmt::format("0,,,,,,,,,,,{:.6f},,,\n", acc) << std::flush;
    save_expert();
  }

  Trainer trainer(model, svf, task, o.policy);
  std::vector<Example> batch;
  while (state.step < o.steps) {
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t step = state.step;  // 0-based index of this step
    batch.clear();
    for (size_t i : batch_indices(train.size(), o.batch_prompts, seed, step)) {
      batch.push_back(train[i]);
    }
    PolicyGradient g = trainer.compute(batch, state.p, mix_seed(seed, uint64_t(step) + 1000003));

    const double lr = o.cosine ? o.adam.lr * 0.5 *
                                     (1.0 + std::cos(std::numbers::pi * double(step) / o.steps))
                               : o.adam.lr;
    const double norm = apply_gradient(g.grad, g.samples, o.max_grad_norm, adam, state.p, lr);
    state.step = step + 1;

    double val_acc = -1.0;
    if (state.step % o.validate_every == 0 || state.step == o.steps) {
      val_acc = validate(state.p);
      if (val_acc > state.best_accuracy) {
        state.best_accuracy = val_acc;
        state.best_step = state.step;
        state.best_p = state.p;
        save_expert();
      }
    }

    const double n = double(g.samples);
    const double kl_tok = g.kl_sum / double(std::max<int64_t>(g.tokens, 1));
    const double secs = seconds_since(t0);
    log->info("step {:>3}/{}  reward {:+.3f}  acc {:5.1f} %  loss {:+.4f}  kl {:.2e}  |g| {:.2e}"
              "  {:>5.1f} s (rollout {:.1f}, grad {:.1f}){}",
              state.step, o.steps, g.reward_sum / n, 100.0 * double(g.correct) / n, g.loss_sum / n,
              kl_tok, norm, secs, g.rollout_seconds, g.gradient_seconds,
              val_acc >= 0 ? fmt::format("  val {:.1f} % (best {:.1f} % @ {})", 100.0 * val_acc,
                                         100.0 * state.best_accuracy, state.best_step)
                           : "");
    if (csv) {
      csv << fmt::format("{},{:.6f},{:.6f},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{},{},{},{},{:.3f},"
                         "{:.3f},{:.3f}\n",
                         state.step, g.reward_sum / n, double(g.correct) / n, g.loss_sum / n,
                         g.pg_sum / n, kl_tok, norm, lr, g.samples, g.trained, g.tokens,
                         val_acc >= 0 ? fmt::format("{:.6f}", val_acc) : "", g.rollout_seconds,
                         g.gradient_seconds, secs)
          << std::flush;
    }

    if (!paths.checkpoint.empty() &&
        (state.step % o.checkpoint_every == 0 || state.step == o.steps)) {
      state.adam_m = adam.m();
      state.adam_v = adam.v();
      state.adam_steps = adam.steps();
      state.settings["initial_validation_accuracy"] = report.initial_accuracy;
      checkpoint_save(paths.checkpoint, state);
    }
  }

  save_expert();
  report.best_accuracy = state.best_accuracy;
  report.best_step = state.best_step;
  report.steps_done = state.step;
  report.seconds = seconds_since(t_start);
  log->info("train {}: done, {} steps; validation {:.1f} % at step 0, best {:.1f} % at step {}; "
            "expert {}", task.name(), state.step, 100.0 * report.initial_accuracy,
            100.0 * report.best_accuracy, report.best_step, paths.expert);
  return report;
}

}  // namespace t2::adaptation
