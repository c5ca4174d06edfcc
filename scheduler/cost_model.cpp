// The cost model's features, priors and online learning. Seconds on the reference
// rank are linear in the features below; a rank divides them by its speed.
#include "scheduler/cost_model.h"

#include <algorithm>
#include <cmath>

#include "t2/error.h"

namespace t2::scheduler {
namespace {

// Columns: for each path (dense, materialized, factored) prefill tokens, decoded
// tokens and decode steps, all scaled by the depth used; then the first pass of
// a two-pass request (prompt tokens, requests), backward tokens of a training
// slice, and per-request and per-shard overheads.
enum Column : std::size_t {
  kPathColumns = 0,  // 3 per path
  kFirstPassTokens = 9,
  kFirstPassRequests = 10,
  kBackwardTokens = 11,
  kRequests = 12,
  kShard = 13,
};

// Prior seconds per unit on the reference rank (a CPU rank on the 135M model).
// Materialized weights run at dense speed; the factored path reads U and V.
std::vector<double> prior_costs() {
  return {2e-4, 1e-3, 1e-2,    // dense: prefill token, decoded token, decode step
          2e-4, 1e-3, 1e-2,    // materialized
          4e-4, 2e-3, 2e-2,    // factored
          2e-4, 5e-2,          // first pass: prompt token, request
          6e-4,                // backward token
          2e-3, 5e-2};         // per request, per shard
}

constexpr double kMinSeconds = 1e-3;
constexpr double kMaxCorrection = 5.0;

nlohmann::json mean_json(const RunningMean& m) { return {m.mean, m.count}; }

RunningMean mean_from_json(const nlohmann::json& j) {
  if (!j.is_array() || j.size() != 2)
    fail("cost model state: expected [mean, count], found {}", j.dump());
  return {j[0].get<double>(), j[1].get<std::uint64_t>()};
}

}  // namespace

CostModel::CostModel(CostModelOptions options)
    : options_(options),
      regression_(prior_costs(), options.prior_spread, options.drift, options.noise) {}

CostModel::Features CostModel::features(const ShardSpec& shard, double output_per_request,
                                        double depth) {
  Features x{};
  const double b = shard.requests;
  const double p = static_cast<double>(shard.prompt_tokens);
  const std::size_t base = kPathColumns + 3 * static_cast<std::size_t>(shard.path);
  x[base + 0] = p * depth;
  x[base + 1] = b * output_per_request * depth;
  // LIMITATION: decode steps are taken as the mean output per request, though
  // the batch's longest output sets them (the coefficient absorbs a typical
  // ratio); the worker reporting its longest output would lift it.
  x[base + 2] = output_per_request * depth;  // batched decode: one step per token
  if (shard.two_pass) {
    x[kFirstPassTokens] = p;
    x[kFirstPassRequests] = b;
  }
  if (shard.kind == ShardKind::kTrain) x[kBackwardTokens] = (p + b * output_per_request) * depth;
  x[kRequests] = b;
  x[kShard] = 1;
  return x;
}

double CostModel::predicted_output_tokens(const ShardSpec& shard) const {
  double out = global_output_.count ? global_output_.mean : options_.default_output_tokens;
  if (auto t = tasks_.find(shard.task); t != tasks_.end()) {
    if (t->second.output.count) out = t->second.output.mean;
    auto s = t->second.output_by_strategy.find(shard.strategy);
    if (s != t->second.output_by_strategy.end() && s->second.count) out = s->second.mean;
  }
  return std::clamp(out, 1.0, std::max(1.0, double(shard.max_new_tokens)));
}

double CostModel::predicted_depth(std::string_view task) const {
  auto t = tasks_.find(task);
  if (t == tasks_.end() || t->second.depth.count == 0) return 1.0;
  return std::clamp(t->second.depth.mean, 0.05, 1.0);
}

double CostModel::estimate_reference(const ShardSpec& shard) const {
  const Features x = features(shard, predicted_output_tokens(shard), predicted_depth(shard.task));
  return std::max(regression_.predict(x), kMinSeconds);
}

double CostModel::estimate(const ShardSpec& shard, RankId rank, double speed) const {
  return std::max(estimate_reference(shard) / effective_speed(rank, speed), kMinSeconds);
}

LinearParts CostModel::linear_parts(const ShardSpec& shard) const {
  // Evaluate the linear model at three points: empty, one request, one token more.
  const double out = predicted_output_tokens(shard);
  const double depth = predicted_depth(shard.task);
  ShardSpec probe = shard;
  probe.requests = 0;
  probe.prompt_tokens = 0;
  const double empty = regression_.predict(features(probe, out, depth));
  probe.requests = 1;
  const double one_request = regression_.predict(features(probe, out, depth));
  probe.prompt_tokens = 1;
  const double one_token = regression_.predict(features(probe, out, depth));
  return {empty, one_request - empty, one_token - one_request};
}

double CostModel::rank_correction(RankId rank) const {
  auto it = rank_log_ratio_.find(rank);
  if (it == rank_log_ratio_.end() || rank_log_ratio_.size() < 2) return 1.0;
  // Centred on the mean of all ranks: an error common to every rank is the
  // regression's to learn, only the differences between ranks are theirs.
  const double centred = it->second - rank_log_sum_ / double(rank_log_ratio_.size());
  return std::clamp(std::exp(centred), 1.0 / kMaxCorrection, kMaxCorrection);
}

double CostModel::effective_speed(RankId rank, double speed) const {
  return std::max(speed, 1e-6) * rank_correction(rank);
}

double CostModel::observe(const ShardSpec& shard, RankId rank, double speed,
                          const Measurement& measured) {
  const double y = measured.seconds;
  if (!(y > 0) || !std::isfinite(y) || shard.requests == 0) return 0;

  // 1. Score the estimate made with what was known before this shard.
  const double before = estimate(shard, rank, speed);
  const double ape = std::abs(before - y) / y;
  errors_.push_back(ape);
  error_sum_ += ape;
  if (errors_.size() > options_.error_window) {
    error_sum_ -= errors_.front();
    errors_.pop_front();
  }
  ++observations_;

  // 2. Learn output length (per task and strategy) and depth (per task).
  const double out = double(measured.output_tokens) / shard.requests;
  const double depth = std::clamp(measured.depth_fraction, 0.05, 1.0);
  TaskStats& task = tasks_[shard.task];
  task.output.add(out, options_.mean_window);
  task.depth.add(depth, options_.mean_window);
  auto s = task.output_by_strategy.find(shard.strategy);
  if (s == task.output_by_strategy.end())
    s = task.output_by_strategy.emplace(shard.strategy, RunningMean{}).first;
  s->second.add(out, options_.mean_window);
  global_output_.add(out, options_.mean_window);

  // 3. Learn the rank's speed relative to its nominal speed, in log space.
  const Features x = features(shard, out, depth);
  const double reference = std::max(regression_.predict(x), kMinSeconds);
  const double observed = std::log(reference / y / std::max(speed, 1e-6));
  auto [it, fresh] = rank_log_ratio_.try_emplace(rank, observed);
  if (!fresh) {
    rank_log_sum_ -= it->second;
    it->second += options_.rank_learning_rate * (observed - it->second);
  }
  rank_log_sum_ += it->second;

  // 4. Learn per-unit costs from the actual output and depth, in reference seconds.
  regression_.update(x, y * effective_speed(rank, speed));
  return ape;
}

double CostModel::mape() const {
  return errors_.empty() ? 0.0 : error_sum_ / double(errors_.size());
}

nlohmann::json CostModel::to_json() const {
  nlohmann::json tasks = nlohmann::json::object();
  for (const auto& [name, stats] : tasks_) {
    nlohmann::json by_strategy = nlohmann::json::object();
    for (const auto& [strategy, m] : stats.output_by_strategy)
      by_strategy[strategy] = mean_json(m);
    tasks[name] = {{"depth", mean_json(stats.depth)},
                   {"output", mean_json(stats.output)},
                   {"output_by_strategy", by_strategy}};
  }
  nlohmann::json ranks = nlohmann::json::object();
  for (const auto& [rank, log_ratio] : rank_log_ratio_) ranks[std::to_string(rank)] = log_ratio;
  return {{"version", 1},
          {"regression", regression_.to_json()},
          {"tasks", tasks},
          {"global_output", mean_json(global_output_)},
          {"ranks", ranks},
          {"errors", std::vector<double>(errors_.begin(), errors_.end())},
          {"observations", observations_}};
}

CostModel CostModel::from_json(const nlohmann::json& state, CostModelOptions options) {
  CostModel model(options);
  try {
    if (!state.is_object() || state.value("version", 0) != 1)
      fail("cost model state: expected an object with version 1");
    model.regression_.load_json(state.at("regression"));
    for (const auto& [name, t] : state.at("tasks").items()) {
      TaskStats stats;
      stats.depth = mean_from_json(t.at("depth"));
      stats.output = mean_from_json(t.at("output"));
      for (const auto& [strategy, m] : t.at("output_by_strategy").items())
        stats.output_by_strategy.emplace(strategy, mean_from_json(m));
      model.tasks_.emplace(name, std::move(stats));
    }
    model.global_output_ = mean_from_json(state.at("global_output"));
    for (const auto& [rank, log_ratio] : state.at("ranks").items()) {
      const double v = log_ratio.get<double>();
      if (!std::isfinite(v)) fail("cost model state: rank {} has a non-finite speed", rank);
      model.rank_log_ratio_[std::stoi(rank)] = v;
      model.rank_log_sum_ += v;
    }
    for (double e : state.at("errors").get<std::vector<double>>()) {
      model.errors_.push_back(e);
      model.error_sum_ += e;
    }
    while (model.errors_.size() > options.error_window) {
      model.error_sum_ -= model.errors_.front();
      model.errors_.pop_front();
    }
    model.observations_ = state.at("observations").get<std::uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("cost model state: {}; delete the saved state to start again from the priors",
         e.what());
  } catch (const std::logic_error&) {  // std::stoi: not a number, or out of range
    fail("cost model state: a rank id is not a number");
  }
  return model;
}

}  // namespace t2::scheduler
