// Reliability of `t2 serve` (DESIGN.md §6): a worker killed with SIGKILL in the
// middle of a training job is reported (health, job events) and its work goes
// on; after a drain and a restart on the same store the job finishes from its
// last checkpoint; an inference job drained mid-way finishes after restart
// without redoing finished requests or writing any decision row twice.
#include <signal.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "tests/coordinator/service_harness.h"

namespace t2::test {
namespace {

using nlohmann::json;

std::vector<json> events(const Service& s, int64_t job) {
  std::vector<json> out;
  int64_t after = 0;
  for (;;) {
    const json page = s.get(fmt::format("/v1/jobs/{}/events?after={}&limit=1000", job, after));
    if (page["events"].empty()) break;
    for (const auto& e : page["events"]) out.push_back(e);
    after = page["next_after"];
  }
  return out;
}

std::vector<json> events_of(const Service& s, int64_t job, const std::string& kind) {
  std::vector<json> out;
  for (auto& e : events(s, job))
    if (e["kind"] == kind) out.push_back(e["payload"]);
  return out;
}

// Every request decision of a job, checked for doubles by request id.
size_t unique_request_decisions(const Service& s, int64_t job, size_t* total) {
  std::set<std::string> ids;
  *total = 0;
  std::string cursor;
  for (;;) {
    std::string target = fmt::format("/v1/decisions?job={}&kind=request&limit=1000", job);
    if (!cursor.empty()) target += "&cursor=" + cursor;
    const json page = s.get(target);
    for (const auto& d : page["decisions"]) {
      ids.insert(d["request_id"].get<std::string>());
      ++*total;
    }
    if (page["next_cursor"].is_null()) break;
    cursor = page["next_cursor"];
  }
  return ids.size();
}

TEST(ServeRecovery, KilledWorkerIsReportedAndTrainingResumesFromItsCheckpoint) {
  Service s;
  s.start();
  const json train = s.post("/v1/jobs", {{"type", "train"},
                                         {"spec", {{"task", "tiny_math"}, {"expert", "resumed"},
                                                   {"steps", 40}, {"prompts_per_step", 4},
                                                   {"samples_per_prompt", 2},
                                                   {"max_tokens", 16}, {"checkpoint_every", 2}}}});
  const int64_t id = train["job"]["id"];
  ASSERT_TRUE(Service::wait_for([&] { return !events_of(s, id, "checkpoint").empty(); }, 120))
      << s.log();

  // SIGKILL a worker of the job's training group in the middle of the job.
  const json placed = s.get(fmt::format("/v1/decisions?job={}&kind=placement&limit=1", id));
  ASSERT_EQ(placed["decisions"].size(), 1u);
  const int victim = placed["decisions"][0]["rank"];
  int pid = 0;
  const json ranks = s.get("/v1/health")["ranks"];
  for (const auto& r : ranks)
    if (r["rank"] == victim) pid = r["pid"];
  ASSERT_GT(pid, 0) << placed.dump() << s.get("/v1/health").dump();
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  ASSERT_TRUE(Service::wait_for([&] {
    return s.get("/v1/health")["status"] == "degraded" && !events_of(s, id, "rank_lost").empty();
  }, 30)) << s.log();
  const json health = s.get("/v1/health");
  EXPECT_EQ(health["workers"]["alive"], 1);
  EXPECT_EQ(health["workers"]["lost"], 1);
  const auto m = s.client()->get("/metrics");
  EXPECT_NE(m.body.find("t2_ranks_lost_total 1"), std::string::npos) << m.body;

  // Accepted while degraded: it must not be lost either.
  const json eval = s.post("/v1/jobs", {{"type", "evaluate"},
                                        {"spec", {{"task", "tiny_logic"}, {"limit", 10},
                                                  {"max_tokens", 4}}}});
  const int64_t eval_id = eval["job"]["id"];

  const size_t checkpoints_seen = events_of(s, id, "checkpoint").size();
  ASSERT_EQ(s.drain(), 0) << s.log();

  // Restart on the same store: the job goes on from its newest checkpoint.
  s.start();
  const json done = s.wait_job(id, 300);
  ASSERT_EQ(done["state"], "succeeded") << done.dump() << s.log();
  const auto all = events(s, id);
  int64_t resumed_at = -1;
  std::map<int64_t, int> step_count;
  for (const auto& e : all) {
    if (e["kind"] == "resumed") resumed_at = e["payload"]["step"];
    if (e["kind"] == "step") ++step_count[e["payload"]["step"].get<int64_t>()];
  }
  ASSERT_GE(resumed_at, 2) << "resumed from a checkpoint, not from scratch";
  EXPECT_GE(events_of(s, id, "checkpoint").size(), checkpoints_seen);
  // Every step ran exactly once: none redone, none skipped.
  ASSERT_EQ(step_count.size(), 40u);
  for (const auto& [step, n] : step_count) EXPECT_EQ(n, 1) << "step " << step;
  EXPECT_EQ(s.get("/v1/experts/resumed")["source_job"], id);

  // The job accepted while degraded finished too, each request recorded once.
  const json e = s.wait_job(eval_id);
  ASSERT_EQ(e["state"], "succeeded") << e.dump();
  EXPECT_EQ(e["result"]["n"], 10);
  size_t total = 0;
  EXPECT_EQ(unique_request_decisions(s, eval_id, &total), 10u);
  EXPECT_EQ(total, 10u);
  ASSERT_EQ(s.drain(), 0) << s.log();
}

TEST(ServeRecovery, DrainedInferenceJobFinishesAfterRestartWithoutDoubles) {
  Service s;
  s.start();
  const json job = s.post("/v1/jobs", {{"type", "evaluate"},
                                       {"spec", {{"tasks", {"tiny_math", "tiny_logic"}},
                                                 {"limit", 20}, {"max_tokens", 24}}}});
  const int64_t id = job["job"]["id"];
  // Drain once some requests are done and some are not.
  ASSERT_TRUE(Service::wait_for([&] { return !events_of(s, id, "shard").empty(); }, 120));
  ASSERT_EQ(s.drain(), 0) << s.log();

  s.start();
  const json done = s.wait_job(id, 300);
  ASSERT_EQ(done["state"], "succeeded") << done.dump() << s.log();
  EXPECT_EQ(done["result"]["n"], 40);
  EXPECT_EQ(done["attempts"], 2);
  // Each request answered once across both runs...
  std::map<int64_t, int> answered;
  for (const auto& shard : events_of(s, id, "shard"))
    for (const auto& item : shard["items"]) ++answered[item["i"].get<int64_t>()];
  ASSERT_EQ(answered.size(), 40u);
  for (const auto& [i, n] : answered) EXPECT_EQ(n, 1) << "item " << i;
  // ...and decided once.
  size_t total = 0;
  EXPECT_EQ(unique_request_decisions(s, id, &total), 40u);
  EXPECT_EQ(total, 40u);
  const auto resumed = events_of(s, id, "resumed");
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_GT(resumed[0]["items_done"].get<int>(), 0);
  ASSERT_EQ(s.drain(), 0) << s.log();
}

}  // namespace
}  // namespace t2::test
