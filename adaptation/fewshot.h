// adaptation::ShotScorer — the fitness of expert mixtures on a few labelled
// examples (docs/method.md §3): the mean per-token log-likelihood of each shot's
// reference answer after its chat prompt. A whole population runs as one forward
// batch (chunked by token rows), every sequence with its own mixture through the
// factored SVF path.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "adaptation/cem.h"
#include "adaptation/task.h"
#include "backbone/expert.h"
#include "backbone/model.h"
#include "backbone/svf.h"
#include "backbone/svf_hook.h"

namespace t2::adaptation {

class ShotScorer {
 public:
  // `per_matrix`: a genome holds K * n_slots weights (expert-major), else K.
  ShotScorer(std::shared_ptr<const backbone::Model> model,
             std::shared_ptr<const backbone::Svf> svf,
             std::vector<std::shared_ptr<const backbone::Expert>> experts,
             std::span<const Example> shots, bool per_matrix = false,
             int64_t max_rows = 2048);

  int genome_size() const;
  // The adapter a genome stands for.
  std::shared_ptr<const backbone::Adapter> adapter(std::span<const float> genome) const;
  // Per genome: mean over shots of the answer's mean per-token log-probability.
  std::vector<double> score(const std::vector<std::vector<float>>& population);
  // CEM over this scorer's genomes (one alpha per expert, or per expert and
  // matrix), the base weights (all alphas 0) among the first generation, so the
  // mixture found never scores below the unadapted model on the shots. The base
  // is the first of the result's initial points (initial_fitness[0]), then
  // options.initial_points.
  CemResult search(CemOptions options);

 private:
  std::shared_ptr<const backbone::Model> model_;
  std::shared_ptr<const backbone::Svf> svf_;
  std::vector<std::shared_ptr<const backbone::Expert>> experts_;
  bool per_matrix_;
  int64_t max_rows_;
  std::vector<std::vector<int32_t>> prompts_, answers_;  // per shot
  backbone::SvfHook hook_;
};

}  // namespace t2::adaptation
