// Cross-entropy method: sample, clamp, evaluate the population in one call,
// refit mean and std to the elites. Deterministic for a given seed.
#include "adaptation/cem.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "t2/error.h"
#include "t2/log.h"

namespace t2::adaptation {

CemOptions cem_preset(const std::string& name) {
  CemOptions o;  // the reference settings
  if (name == "reference") return o;
  if (name != "small") fail("CEM preset '{}' is unknown (reference or small)", name);
  o.population = 8;
  o.elites = 3;
  o.generations = 4;
  return o;
}

CemResult cem_search(int dim, const PopulationFitness& fitness, const CemOptions& o) {
  if (dim < 1) fail("CEM: dimension should be >= 1, found {}", dim);
  if (o.population < 2) fail("CEM: population should be >= 2, found {}", o.population);
  if (o.elites < 1 || o.elites > o.population)
    fail("CEM: elites should be in [1, population = {}], found {}", o.population, o.elites);
  if (o.generations < 1) fail("CEM: generations should be >= 1, found {}", o.generations);
  if (!(o.lo < o.hi)) fail("CEM: bounds [{}, {}] are empty", o.lo, o.hi);
  if (o.initial_points.size() > size_t(o.population))
    fail("CEM: {} initial points do not fit a population of {}", o.initial_points.size(),
         o.population);
  for (const auto& p : o.initial_points)
    if (p.size() != size_t(dim))
      fail("CEM: an initial point has {} values, expected the dimension {}", p.size(), dim);

  auto log = log::get("adapt");
  const auto t0 = std::chrono::steady_clock::now();
  const int groups = o.dim_groups > 0 ? o.dim_groups : dim;
  std::vector<double> mean(size_t(dim), o.init_mean >= 0 ? o.init_mean : 1.0 / groups);
  std::vector<double> stdev(size_t(dim), o.init_std);
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> normal(0.0, 1.0);

  CemResult result;
  result.best_fitness = -INFINITY;
  std::vector<std::vector<float>> pop(size_t(o.population), std::vector<float>(size_t(dim)));
  for (int g = 0; g < o.generations; ++g) {
    for (int m = 0; m < o.population; ++m) {
      if (m == 0 && !result.best.empty()) {  // elitism: keep the best so far
        pop[0] = result.best;
        continue;
      }
      if (g == 0 && size_t(m) < o.initial_points.size()) {
        for (int d = 0; d < dim; ++d)
          pop[size_t(m)][size_t(d)] =
              float(std::clamp(double(o.initial_points[size_t(m)][size_t(d)]), o.lo, o.hi));
        continue;
      }
      for (int d = 0; d < dim; ++d)
        pop[size_t(m)][size_t(d)] =
            float(std::clamp(mean[size_t(d)] + stdev[size_t(d)] * normal(rng), o.lo, o.hi));
    }

    const std::vector<double> f = fitness(pop);
    if (f.size() != pop.size())
      fail("CEM: fitness returned {} values for a population of {}", f.size(), pop.size());
    result.evaluations += o.population;
    if (g == 0) result.initial_fitness.assign(f.begin(), f.begin() + long(o.initial_points.size()));

    std::vector<int> order(size_t(o.population));
    std::iota(order.begin(), order.end(), 0);
    // Stable: ties keep the lower index, so member 0 (the incumbent) wins ties.
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return f[size_t(a)] > f[size_t(b)]; });
    if (f[size_t(order[0])] > result.best_fitness || result.best.empty()) {
      result.best_fitness = f[size_t(order[0])];
      result.best = pop[size_t(order[0])];
    }
    result.best_per_generation.push_back(result.best_fitness);

    for (int d = 0; d < dim; ++d) {
      double mu = 0.0, var = 0.0;
      for (int e = 0; e < o.elites; ++e) mu += pop[size_t(order[size_t(e)])][size_t(d)];
      mu /= o.elites;
      for (int e = 0; e < o.elites; ++e) {
        const double dx = pop[size_t(order[size_t(e)])][size_t(d)] - mu;
        var += dx * dx;
      }
      mean[size_t(d)] = mu;
      stdev[size_t(d)] = std::max(std::sqrt(var / o.elites), o.min_std);
    }
    log->info("cem generation {}/{}: best {:.5f}, this generation's best {:.5f}, {:.1f} s",
              g + 1, o.generations, result.best_fitness, f[size_t(order[0])],
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace t2::adaptation
