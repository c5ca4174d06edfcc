// The training run of one expert (docs/method.md §2) on one process: batches of
// train-split prompts, Trainer steps, Adam, validation on a fixed subset of the
// validation split keeping the best p (early stopping), a CSV row per step, the
// best expert written whenever it improves, a resumable checkpoint every few steps.
// Batches and sample seeds derive from (seed, step) alone, so a resumed run
// repeats an uninterrupted one exactly.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "adaptation/adam.h"
#include "adaptation/evaluate.h"
#include "adaptation/task.h"
#include "adaptation/trainer.h"
#include "backbone/model.h"
#include "backbone/svf.h"

namespace t2::adaptation {

struct TrainOptions {
  std::string preset = "small";
  int steps = 40;
  int batch_prompts = 8;          // B prompts per step
  PolicyConfig policy;            // K, temperature, baseline, lambda, token budget
  AdamOptions adam;
  double max_grad_norm = 1e-3;    // global norm of dL/dp after the division by samples
  bool cosine = false;            // lr * (1 + cos(pi * step / steps)) / 2
  int validate_every = 5;         // steps; also before the first and after the last
  int validation_examples = 64;   // the first N of the validation split (0: all)
  int validation_batch = 16;
  int checkpoint_every = 5;
  uint64_t seed = 0;
};

// "reference": the paper's code (B 256, 1 greedy sample, no baseline, lambda 0,
// clip 1e-3, Adam lr 2e-3). "small": learns on two CPU cores in minutes (B 8,
// K 4 samples at temperature 1 with a group-mean baseline). Throws on other names.
TrainOptions train_preset(const std::string& name);
std::vector<std::string> train_preset_names();
nlohmann::json train_settings_json(const TrainOptions& options);

struct TrainPaths {
  std::string expert;      // the best expert (safetensors)
  std::string checkpoint;  // resumable state
  std::string csv;         // one row per step
  bool resume = false;     // continue from `checkpoint` when it exists
};

struct TrainReport {
  double initial_accuracy = 0.0;  // validation subset, before the first step
  double best_accuracy = 0.0;
  int64_t best_step = 0;
  int64_t steps_done = 0;
  int64_t validation_n = 0;
  double seconds = 0.0;           // this process's share (after a resume, since it)
};

// Indices into the train examples for step `step` (0-based): epochs of a seeded
// permutation walked B at a time.
std::vector<size_t> batch_indices(size_t n_train, int batch, uint64_t seed, int64_t step);

// Greedy evaluation of the expert p (empty: the base weights) on `examples`.
EvalResult evaluate_p(const backbone::Model& model, const std::shared_ptr<const backbone::Svf>& svf,
                      const Task& task, std::span<const Example> examples,
                      std::span<const float> p, int batch_size, const std::string& label);

// Accuracy (greedy) of the expert p on `examples`.
double validation_accuracy(const backbone::Model& model,
                           const std::shared_ptr<const backbone::Svf>& svf, const Task& task,
                           std::span<const Example> examples, std::span<const float> p,
                           int batch_size);

TrainReport train_expert(const backbone::Model& model, std::shared_ptr<const backbone::Svf> svf,
                         const Task& task, const TrainOptions& options, const TrainPaths& paths);

}  // namespace t2::adaptation
