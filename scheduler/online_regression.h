// OnlineRegression: a linear model y ≈ θ·x whose coefficients are learned one
// observation at a time by a Kalman filter (random-walk coefficients, Gaussian
// prior). Errors are weighted relatively (each equation is divided by its
// measured y), so a 10 ms shard teaches as much as a 10 min one. Invariants: θ
// stays non-negative (costs add up), the covariance stays symmetric and bounded.
#pragma once

#include <nlohmann/json.hpp>

#include <span>
#include <vector>

namespace t2::scheduler {

class OnlineRegression {
 public:
  // prior: starting coefficients; prior_spread: relative std-dev of each prior
  // coefficient; drift: relative std-dev a coefficient may wander per update;
  // noise: relative std-dev of one measurement.
  OnlineRegression(std::vector<double> prior, double prior_spread, double drift,
                   double noise);

  std::size_t size() const { return theta_.size(); }
  std::span<const double> coefficients() const { return theta_; }
  double predict(std::span<const double> x) const;

  // Learns from one measured y > 0 for features x.
  void update(std::span<const double> x, double y);

  nlohmann::json to_json() const;
  void load_json(const nlohmann::json& state);  // throws t2::Error on a bad shape

 private:
  std::vector<double> theta_;
  std::vector<double> cov_;        // size x size, row-major
  std::vector<double> drift_var_;  // per-coefficient process noise added each update
  double noise_var_;
  std::vector<double> z_, pz_;     // scratch of update(), kept to avoid allocating
};

}  // namespace t2::scheduler
