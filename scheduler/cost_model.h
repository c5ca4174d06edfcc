// CostModel: seconds a shard will take on a rank, from its complexity. Per-token
// costs of each adaptation path are learned online (OnlineRegression), output
// length per task and strategy and depth per task are learned from finished
// shards, and each rank's speed relative to its nominal speed is learned too.
// Invariant: estimates are positive and finite; the state round-trips through JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstddef>
#include <deque>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "scheduler/online_regression.h"
#include "scheduler/running_mean.h"
#include "scheduler/types.h"

namespace t2::scheduler {

struct CostModelOptions {
  double default_output_tokens = 128;  // per request, before anything is learned
  double prior_spread = 1.0;           // relative uncertainty of the prior costs
  double drift = 0.02;                 // relative wander of a cost per observation
  double noise = 0.15;                 // relative noise of one measured time
  std::uint64_t mean_window = 64;      // running means become EWMAs after this many
  double rank_learning_rate = 0.1;     // EWMA rate of a rank's speed correction
  std::size_t error_window = 256;      // shards the MAPE is taken over
};

// A shard's estimate split into its linear parts, on a speed-1 rank: total =
// per_shard + requests * per_request + prompt_tokens * per_prompt_token.
struct LinearParts {
  double per_shard = 0;
  double per_request = 0;
  double per_prompt_token = 0;
};

class CostModel {
 public:
  // Feature columns of the regression (see cost_model.cpp for their meaning).
  static constexpr std::size_t kFeatures = 14;

  explicit CostModel(CostModelOptions options = {});

  // Seconds on a rank of nominal `speed` (1 = the reference rank).
  double estimate(const ShardSpec& shard, RankId rank, double speed) const;
  double estimate_reference(const ShardSpec& shard) const;
  LinearParts linear_parts(const ShardSpec& shard) const;

  // Nominal speed times what was learned of this rank relative to the others.
  double effective_speed(RankId rank, double speed) const;
  double predicted_output_tokens(const ShardSpec& shard) const;  // per request
  double predicted_depth(std::string_view task) const;

  // Learns from a finished shard. Returns the absolute percentage error of the
  // estimate the model would have made just before (0.1 = 10 %).
  double observe(const ShardSpec& shard, RankId rank, double speed,
                 const Measurement& measured);

  double mape() const;  // mean absolute percentage error over recent shards
  std::size_t mape_shards() const { return errors_.size(); }  // what mape() is over
  std::uint64_t observations() const { return observations_; }
  std::span<const double> coefficients() const { return regression_.coefficients(); }

  nlohmann::json to_json() const;
  static CostModel from_json(const nlohmann::json& state, CostModelOptions options = {});

 private:
  struct TaskStats {
    RunningMean depth;
    RunningMean output;  // per request, any strategy
    std::map<std::string, RunningMean, std::less<>> output_by_strategy;
  };

  using Features = std::array<double, kFeatures>;
  static Features features(const ShardSpec& shard, double output_per_request,
                           double depth);
  double rank_correction(RankId rank) const;

  CostModelOptions options_;
  OnlineRegression regression_;
  std::map<std::string, TaskStats, std::less<>> tasks_;
  RunningMean global_output_;
  // LIMITATION: learned rank speeds are keyed by rank id, so a restart with a
  // different layout applies them to the wrong device; keying by host and device
  // would lift it.
  std::unordered_map<RankId, double> rank_log_ratio_;  // log(observed / nominal speed)
  double rank_log_sum_ = 0;
  std::deque<double> errors_;
  double error_sum_ = 0;
  std::uint64_t observations_ = 0;
};

}  // namespace t2::scheduler
