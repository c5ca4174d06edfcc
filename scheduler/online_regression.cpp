// Kalman update of a linear cost model, one relative-error equation at a time.
#include "scheduler/online_regression.h"

#include <algorithm>
#include <cmath>

#include "t2/error.h"

namespace t2::scheduler {

OnlineRegression::OnlineRegression(std::vector<double> prior, double prior_spread,
                                   double drift, double noise)
    : theta_(std::move(prior)), noise_var_(noise * noise) {
  const std::size_t n = theta_.size();
  cov_.assign(n * n, 0.0);
  drift_var_.assign(n, 0.0);
  z_.assign(n, 0.0);
  pz_.assign(n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    const double scale = std::max(theta_[i], 1e-9);
    cov_[i * n + i] = (prior_spread * scale) * (prior_spread * scale);
    drift_var_[i] = (drift * scale) * (drift * scale);
  }
}

double OnlineRegression::predict(std::span<const double> x) const {
  double y = 0;
  for (std::size_t i = 0; i < theta_.size(); ++i) y += theta_[i] * x[i];
  return y;
}

void OnlineRegression::update(std::span<const double> x, double y) {
  if (!(y > 0) || !std::isfinite(y)) return;
  const std::size_t n = theta_.size();

  // Relative weighting: the equation θ·(x/y) = 1 has unit scale whatever y is.
  std::vector<double>& z = z_;
  for (std::size_t i = 0; i < n; ++i) z[i] = x[i] / y;

  // Random walk: coefficients may have drifted since the last update.
  for (std::size_t i = 0; i < n; ++i) cov_[i * n + i] += drift_var_[i];

  std::vector<double>& pz = pz_;  // P z
  for (std::size_t i = 0; i < n; ++i) {
    pz[i] = 0;
    for (std::size_t j = 0; j < n; ++j) pz[i] += cov_[i * n + j] * z[j];
  }
  double s = noise_var_;
  for (std::size_t i = 0; i < n; ++i) s += z[i] * pz[i];

  double residual = 1.0;
  for (std::size_t i = 0; i < n; ++i) residual -= theta_[i] * z[i];

  // θ += K r, P -= K (Pz)^T with K = Pz / s, on the upper triangle mirrored, so
  // P stays exactly symmetric.
  for (std::size_t i = 0; i < n; ++i) theta_[i] += pz[i] / s * residual;
  for (std::size_t i = 0; i < n; ++i) {
    const double ki = pz[i] / s;
    cov_[i * n + i] = std::max(cov_[i * n + i] - ki * pz[i], 0.0);
    for (std::size_t j = i + 1; j < n; ++j)
      cov_[i * n + j] = cov_[j * n + i] = cov_[i * n + j] - ki * pz[j];
  }

  // Costs add up: a negative per-token cost is noise fitted, not physics.
  for (double& t : theta_) t = std::max(t, 0.0);
}

nlohmann::json OnlineRegression::to_json() const {
  return {{"coefficients", theta_}, {"covariance", cov_}};
}

void OnlineRegression::load_json(const nlohmann::json& state) {
  const std::size_t n = theta_.size();
  if (!state.is_object() || !state.contains("coefficients") ||
      !state.contains("covariance"))
    fail("cost model state: expected an object with `coefficients` and `covariance`; "
         "delete the saved state to start again from the priors");
  auto theta = state.at("coefficients").get<std::vector<double>>();
  auto cov = state.at("covariance").get<std::vector<double>>();
  if (theta.size() != n || cov.size() != n * n)
    fail("cost model state: expected {} coefficients and a {}x{} covariance, found {} "
         "and {} values; it was saved by another version — delete it to start again",
         n, n, n, theta.size(), cov.size());
  for (double v : theta)
    if (!std::isfinite(v) || v < 0) fail("cost model state: coefficient {} is invalid", v);
  for (double v : cov)
    if (!std::isfinite(v)) fail("cost model state: covariance holds a non-finite value");
  theta_ = std::move(theta);
  cov_ = std::move(cov);
}

}  // namespace t2::scheduler
