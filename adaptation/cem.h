// adaptation::cem_search — the cross-entropy method over a box [lo, hi]^dim
// (docs/method.md §3, few-shot mixing): Gaussian samples clamped to the box,
// new mean and std from the elites, member 0 of every generation after the
// first re-evaluates the best point so far, so the returned best never gets worse.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace t2::adaptation {

// Defaults are the reference settings (docs/method.md §3); cem_preset("small") is
// what t2 runs unless told otherwise.
struct CemOptions {
  int population = 32;
  int elites = 6;
  int generations = 50;
  double init_mean = -1.0;  // < 0: 1 / dim_groups (1/K for K experts)
  int dim_groups = 0;       // K; 0: dim
  double init_std = 0.5;
  double lo = 0.0, hi = 1.0;
  double min_std = 1e-3;    // floor, so the search never freezes completely
  uint64_t seed = 0;
  // Points evaluated as the first members of generation 1 (clamped to the box),
  // e.g. all zeros = no expert: the search then never returns worse than it.
  std::vector<std::vector<float>> initial_points;
};

struct CemResult {
  std::vector<double> initial_fitness;  // of options.initial_points, in order
  std::vector<float> best;
  double best_fitness = 0.0;
  std::vector<double> best_per_generation;
  int64_t evaluations = 0;
  double seconds = 0.0;
};

// "reference": population 32, 6 elites, 50 generations (the paper's code).
// "small": population 8, 3 elites, 4 generations. Every member scores all shots
// through the whole network, so on 2 CPU cores one reference generation (32
// members x 10 ARC shots) takes minutes and the reference search hours; the
// genome is one weight per expert, which a few small generations already place.
// Throws t2::Error for another name.
CemOptions cem_preset(const std::string& name);

// Higher is better. Called once per generation with the whole population, so the
// callee can evaluate every member in one batch.
using PopulationFitness =
    std::function<std::vector<double>(const std::vector<std::vector<float>>& population)>;

// Throws t2::Error on bad settings (elites outside [1, population], dim < 1, ...).
CemResult cem_search(int dim, const PopulationFitness& fitness, const CemOptions& options);

}  // namespace t2::adaptation
