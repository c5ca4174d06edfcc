// The cost model: prior estimates by hand, online learning of costs, output
// lengths, depth and rank speeds, its error report, and its saved state.
#include "scheduler/cost_model.h"

#include <gtest/gtest.h>

#include <random>

#include "t2/error.h"

namespace t2::scheduler {
namespace {

ShardSpec spec(Path path, bool two_pass, std::uint32_t requests, std::uint64_t tokens,
               std::string task = "t", std::string strategy = "s") {
  ShardSpec s;
  s.task = std::move(task);
  s.strategy = std::move(strategy);
  s.path = path;
  s.two_pass = two_pass;
  s.requests = requests;
  s.prompt_tokens = tokens;
  return s;
}

TEST(CostModel, PriorEstimateByHand) {
  CostModel model;
  // Dense, 2 requests, 100 prompt tokens, 128 output tokens each (the default):
  // 100*2e-4 + 256*1e-3 + 128*1e-2 + 2*2e-3 + 0.05 = 1.61 s.
  EXPECT_NEAR(model.estimate_reference(spec(Path::kDense, false, 2, 100)), 1.61, 1e-9);
  EXPECT_NEAR(model.estimate(spec(Path::kDense, false, 2, 100), 3, 2.0), 0.805, 1e-9);
  // Factored and two-pass: 0.04 + 0.512 + 2.56 + (0.02 + 0.1) + 0.004 + 0.05.
  EXPECT_NEAR(model.estimate_reference(spec(Path::kFactored, true, 2, 100)), 3.286, 1e-9);
}

TEST(CostModel, LinearPartsAddUpToTheEstimate) {
  CostModel model;
  const ShardSpec s = spec(Path::kMaterialized, true, 5, 700);
  const LinearParts parts = model.linear_parts(s);
  EXPECT_NEAR(parts.per_shard + 5 * parts.per_request + 700 * parts.per_prompt_token,
              model.estimate_reference(s), 1e-9);
}

TEST(CostModel, LearnsOutputLengthPerTaskAndStrategy) {
  CostModel model;
  ShardSpec a = spec(Path::kDense, false, 4, 100, "t", "s");
  ShardSpec b = spec(Path::kDense, false, 4, 100, "t", "u");
  model.observe(a, 1, 1.0, {2.0, 4 * 40, 1.0});
  model.observe(b, 1, 1.0, {2.0, 4 * 80, 1.0});
  EXPECT_DOUBLE_EQ(model.predicted_output_tokens(a), 40);
  EXPECT_DOUBLE_EQ(model.predicted_output_tokens(b), 80);
  EXPECT_DOUBLE_EQ(model.predicted_output_tokens(spec(Path::kDense, false, 1, 1, "t", "new")), 60);
  EXPECT_DOUBLE_EQ(model.predicted_output_tokens(spec(Path::kDense, false, 1, 1, "x", "y")), 60);
  ShardSpec capped = a;
  capped.max_new_tokens = 30;
  EXPECT_DOUBLE_EQ(model.predicted_output_tokens(capped), 30);
}

TEST(CostModel, LearnsDepthPerTask) {
  CostModel model;
  const ShardSpec s = spec(Path::kDense, false, 4, 100, "early");
  const double full = model.estimate_reference(s);
  model.observe(s, 1, 1.0, {1.0, 4 * 128, 0.5});
  EXPECT_DOUBLE_EQ(model.predicted_depth("early"), 0.5);
  EXPECT_DOUBLE_EQ(model.predicted_depth("other"), 1.0);
  EXPECT_LT(model.estimate_reference(s), full);
}

// A world whose per-unit costs differ from the priors by factors 0.4 to 2.5.
struct World {
  double prefill[3] = {3e-4, 1.8e-4, 1.2e-3};
  double decode[3] = {4e-4, 5e-4, 3e-3};
  double step[3] = {2.5e-2, 2.0e-2, 1.0e-2};
  double seconds(const ShardSpec& s, double out, double speed) const {
    const auto p = static_cast<std::size_t>(s.path);
    double t = prefill[p] * s.prompt_tokens + decode[p] * s.requests * out + step[p] * out;
    if (s.two_pass) t += 1e-4 * s.prompt_tokens + 0.08 * s.requests;
    return (t + 5e-3 * s.requests + 0.2) / speed;
  }
};

TEST(CostModel, LearnsCostsAndRankSpeedsOnline) {
  CostModelOptions options;
  options.error_window = 50;
  CostModel model(options);
  const World world;
  std::mt19937_64 rng(7);
  const double out_of[4] = {20, 60, 150, 400};  // per task, fixed
  // Rank 2 is nominally as fast as rank 1 but really runs at half its speed.
  for (int i = 0; i < 600; ++i) {
    const int task = int(rng() % 4);
    ShardSpec s = spec(Path(rng() % 3), rng() % 2 == 0, 1 + std::uint32_t(rng() % 16),
                       20 + rng() % 2000, "task" + std::to_string(task));
    s.max_new_tokens = 512;
    const RankId rank = 1 + int(i % 2);
    const double truth = world.seconds(s, out_of[task], rank == 1 ? 1.0 : 0.5);
    model.observe(s, rank, 1.0, {truth, std::uint64_t(out_of[task] * s.requests), 1.0});
  }
  EXPECT_LT(model.mape(), 0.02);  // no noise: only what is left to learn
  EXPECT_NEAR(model.effective_speed(2, 1.0) / model.effective_speed(1, 1.0), 0.5, 0.05);
  EXPECT_EQ(model.observations(), 600u);
}

TEST(CostModel, StateRoundTripsThroughJson) {
  CostModel model;
  const ShardSpec s = spec(Path::kFactored, true, 8, 900);
  for (int i = 0; i < 20; ++i) model.observe(s, 1 + i % 3, 1.0, {5.0 + i % 4, 8 * 70, 0.8});
  const nlohmann::json state = model.to_json();
  const CostModel back = CostModel::from_json(nlohmann::json::parse(state.dump()));
  EXPECT_NEAR(back.estimate(s, 2, 1.0), model.estimate(s, 2, 1.0), 1e-12);
  EXPECT_NEAR(back.mape(), model.mape(), 1e-12);
  EXPECT_EQ(back.observations(), model.observations());
  EXPECT_DOUBLE_EQ(back.predicted_output_tokens(s), 70);
  EXPECT_EQ(back.to_json(), state);
}

TEST(CostModel, RejectsStateOfAnotherShape) {
  EXPECT_THROW(CostModel::from_json(nlohmann::json::object()), t2::Error);
  EXPECT_THROW(CostModel::from_json({{"version", 2}}), t2::Error);
  nlohmann::json state = CostModel().to_json();
  state["regression"]["coefficients"] = {1.0, 2.0};
  EXPECT_THROW(CostModel::from_json(state), t2::Error);
  state = CostModel().to_json();
  state["ranks"] = {{"not-a-rank", 0.1}};
  EXPECT_THROW(CostModel::from_json(state), t2::Error);
}

TEST(CostModel, IgnoresMeaninglessMeasurements) {
  CostModel model;
  const ShardSpec s = spec(Path::kDense, false, 2, 100);
  EXPECT_EQ(model.observe(s, 1, 1.0, {0.0, 10, 1.0}), 0.0);
  EXPECT_EQ(model.observations(), 0u);
  EXPECT_EQ(model.mape(), 0.0);
}

}  // namespace
}  // namespace t2::scheduler
