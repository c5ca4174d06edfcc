// The scheduler inside `t2 serve` (mpirun -n 3, tiny model): an evaluate job over
// two tasks is placed by the planner, one decision row per placement with its
// estimate and, once done, its measured seconds; the cost model's error is in
// the job result, /v1/health and /metrics; after a drain and a restart on the
// same store the model is loaded, not started again from its priors.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>

#include "tests/coordinator/service_harness.h"

namespace t2::test {
namespace {

using nlohmann::json;

// 6 requests of each task. The first run may answer with 4 tokens, the second
// with the tasks' own 6: the prior (128 tokens) is clamped to that budget, so a
// model that learned 4 or fewer predicts differently from one that did not.
json evaluate(int max_tokens) {
  return {{"type", "evaluate"},
          {"spec", {{"tasks", {"tiny_math", "tiny_logic"}}, {"limit", 6},
                    {"max_tokens", max_tokens}}}};
}
constexpr int kRequests = 12;

// The cost model's prior for a base-model (dense, one-pass) shard on a speed-1
// rank with nothing learned: seconds per prefill token, per decoded token, per
// decode step, per request and per shard (scheduler/cost_model.cpp).
double prior_seconds(double prompt_tokens, double requests, double output) {
  return 2e-4 * prompt_tokens + 1e-3 * requests * output + 1e-2 * output + 2e-3 * requests +
         5e-2;
}

std::vector<json> placements(const Service& s, int64_t job) {
  const json page =
      s.get(fmt::format("/v1/decisions?job={}&kind=placement&order=oldest&limit=1000", job));
  return page["decisions"].get<std::vector<json>>();
}

std::vector<json> events_of(const Service& s, int64_t job, const std::string& kind) {
  std::vector<json> out;
  const json page = s.get(fmt::format("/v1/jobs/{}/events?limit=1000", job));
  for (const auto& e : page["events"])
    if (e["kind"] == kind) out.push_back(e["payload"]);
  return out;
}

// A sample's value in Prometheus text; NaN when absent.
double metric(const Service& s, const std::string& name) {
  std::istringstream lines(s.client()->get("/metrics").body);
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  return std::nan("");
}

int64_t submit(const Service& s, int max_tokens) {
  const json r = s.post("/v1/jobs", evaluate(max_tokens));
  const int64_t id = r["job"]["id"];
  const json done = s.wait_job(id, 120);
  EXPECT_EQ(done["state"], "succeeded") << done.dump() << s.log();
  return id;
}

TEST(ServeScheduler, PlacementsTeachTheCostModelAndItSurvivesARestart) {
  Service s;
  s.start();
  EXPECT_EQ(s.get("/v1/health")["cost_model"]["shards"], 0);
  const int64_t first = submit(s, 4);

  // Every shard is one placement row: rank, estimate, measured seconds.
  const auto rows = placements(s, first);
  ASSERT_GE(rows.size(), 3u) << "12 requests in shards of at most 4";
  int requests = 0;
  for (const auto& d : rows) {
    EXPECT_EQ(d["strategy"], "planned") << d.dump();
    EXPECT_TRUE(d["rank"] == 1 || d["rank"] == 2) << d.dump();
    ASSERT_TRUE(d["estimated_cost"].is_number()) << d.dump();
    ASSERT_TRUE(d["measured_cost"].is_number()) << "completed with its measured seconds: "
                                                << d.dump();
    EXPECT_GT(d["estimated_cost"].get<double>(), 0);
    EXPECT_GT(d["measured_cost"].get<double>(), 0);
    EXPECT_EQ(d["first_pass"]["cost_task"], "mixed");
    requests += d["first_pass"]["requests"].get<int>();
  }
  EXPECT_EQ(requests, kRequests);

  // The first placement was estimated from the priors alone: hand-computable.
  const json& p0 = rows.front()["first_pass"];
  EXPECT_EQ(p0["predicted_output_tokens"].get<double>(), 4);
  const double prior0 = prior_seconds(p0["prompt_tokens"].get<double>(),
                                      p0["requests"].get<double>(), 4);
  EXPECT_NEAR(rows.front()["estimated_cost"].get<double>(), prior0, 1e-9 * prior0);

  // What it learned of output length: the mean over shards of tokens per request.
  std::map<int64_t, int> requests_of;  // placement -> requests
  for (const auto& d : rows)
    requests_of[d["first_pass"]["placement"]] = d["first_pass"]["requests"];
  double learned_output = 0;
  int shards = 0;
  for (const auto& e : events_of(s, first, "shard")) {
    learned_output += e["output_tokens"].get<double>() / requests_of.at(e["placement"]);
    ++shards;
  }
  ASSERT_EQ(size_t(shards), rows.size());
  learned_output /= shards;
  ASSERT_LE(learned_output, 4);

  // Its error: in the job result, /v1/health and /metrics, over every shard.
  const json cost = s.get(fmt::format("/v1/jobs/{}", first))["result"]["cost_model"];
  EXPECT_EQ(cost["job_shards"], shards) << cost.dump();
  EXPECT_EQ(cost["shards"], shards);
  const double mape = cost["mape"];
  EXPECT_TRUE(std::isfinite(mape) && mape >= 0) << mape;
  const json health = s.get("/v1/health")["cost_model"];
  EXPECT_EQ(health["shards"], shards);
  EXPECT_EQ(health["mape_shards"], shards);
  EXPECT_EQ(health["restored_shards"], 0);
  EXPECT_NEAR(health["mape"].get<double>(), mape, 1e-12);
  const double exported = metric(s, "t2_cost_model_mape");
  EXPECT_TRUE(std::isfinite(exported)) << s.client()->get("/metrics").body;
  EXPECT_NEAR(exported, mape, 1e-5);
  EXPECT_EQ(metric(s, "t2_cost_model_shards_total"), shards);
  EXPECT_EQ(metric(s, "t2_cost_model_mape_shards"), shards);

  // Restart on the same store: the state is loaded.
  ASSERT_EQ(s.drain(), 0) << s.log();
  s.start();
  const json restored = s.get("/v1/health")["cost_model"];
  EXPECT_EQ(restored["restored_shards"], shards) << restored.dump();
  EXPECT_EQ(restored["shards"], shards);
  EXPECT_NEAR(restored["mape"].get<double>(), mape, 1e-12);
  EXPECT_EQ(metric(s, "t2_cost_model_shards_total"), shards);

  // The same tasks with the tasks' budget of 6 tokens: its first estimate uses
  // the learned output length (at most 4) and per-token costs, not the priors.
  const int64_t second = submit(s, 6);
  const auto again = placements(s, second);
  ASSERT_FALSE(again.empty());
  const json& q0 = again.front()["first_pass"];
  EXPECT_NEAR(q0["predicted_output_tokens"].get<double>(), learned_output, 1e-9)
      << q0.dump();
  EXPECT_LT(q0["predicted_output_tokens"].get<double>(), 6) << "the prior, clamped";
  const double prior1 = prior_seconds(q0["prompt_tokens"].get<double>(),
                                      q0["requests"].get<double>(), 6);
  const double estimate1 = again.front()["estimated_cost"];
  EXPECT_GT(std::abs(estimate1 - prior1), 1e-3 * prior1)
      << "estimate " << estimate1 << " equals the prior " << prior1;
  const json cost2 = s.get(fmt::format("/v1/jobs/{}", second))["result"]["cost_model"];
  EXPECT_EQ(cost2["shards"], shards + int(again.size()));
  EXPECT_EQ(s.drain(), 0) << s.log();
}

}  // namespace
}  // namespace t2::test
