// SIGKILL at random moments: a child writes jobs, decisions and events through
// the Store and reports each durable step; after each kill the store reopens,
// holds every reported row, passes integrity_check and shows nothing half-written.
#include <gtest/gtest.h>

#include <fcntl.h>

#include <chrono>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "child_process.h"
#include "store/store.h"
#include "test_util.h"

namespace t2::store {
namespace {

using test::raw_query;

constexpr int kKills = 24;

int state_rank(const std::string& state) {
  return state == "queued" ? 0 : state == "running" ? 1 : 2;
}

TEST(Crash, SigkillAtRandomMomentsLosesNothingCommitted) {
  test::TempDir dir;
  std::string path = dir.file("t2.db");
  std::mt19937 rng(20240601);
  std::map<std::string, JobId> reported_jobs;
  std::map<JobId, std::string> reported_states;
  int64_t flushed = 0;

  for (int round = 0; round < kKills; ++round) {
    // Early rounds die young (during open and migration), later ones mid-stream.
    int delay_ms = round < 3 ? 1 + static_cast<int>(rng() % 15)
                             : 20 + static_cast<int>(rng() % 300);
    test::ChildProcess child({T2_STORE_CRASH_WRITER, "write", path, std::to_string(round)},
                             dir.file("child.log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    child.kill_now();
    int status = child.wait();
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer ended by itself; see child.log:\n"
                                     << test::read_all(dir.file("child.log"));

    for (const std::string& line : child.lines()) {
      std::istringstream in(line);
      std::string what;
      in >> what;
      if (what == "job") {
        std::string submission;
        JobId id;
        in >> submission >> id;
        reported_jobs[submission] = id;
      } else if (what == "state") {
        JobId id;
        std::string state;
        in >> id >> state;
        reported_states[id] = state;
      } else if (what == "flushed") {
        in >> flushed;
      }
    }
    if (!std::filesystem::exists(path)) continue;  // killed before it created the file

    auto store = Store::open(path);  // recovers the WAL, runs quick_check
    ASSERT_EQ(store->integrity_check(), "ok") << "round " << round;

    for (const auto& [submission, id] : reported_jobs) {
      auto job = store->find_job(submission);
      ASSERT_TRUE(job) << "round " << round << ": committed job " << submission << " is gone";
      EXPECT_EQ(job->id, id);
    }
    for (const auto& [id, state] : reported_states) {
      auto job = store->get_job(id);
      ASSERT_TRUE(job);
      EXPECT_GE(state_rank(std::string(to_string(job->state))), state_rank(state))
          << "round " << round << ": job " << id << " lost its state " << state;
    }

    // Committed decisions form the prefix 1..max, and every flushed id is in it.
    EXPECT_EQ(raw_query(path, "SELECT count(*) FROM decisions WHERE id <= " +
                                  std::to_string(flushed)),
              std::to_string(flushed));
    EXPECT_EQ(raw_query(path, "SELECT count(*) = COALESCE(max(id), 0) FROM decisions"), "1");

    // Nothing half-written: each decision has all its expert rows (depth holds
    // how many it was given), each job's last state event matches its state.
    EXPECT_EQ(raw_query(path,
                        "SELECT count(*) FROM decisions d LEFT JOIN (SELECT decision_id,"
                        " count(*) AS n FROM decision_experts GROUP BY decision_id) x"
                        " ON x.decision_id = d.id WHERE d.depth <> COALESCE(x.n, 0)"
                        " OR d.depth <> json_array_length(d.experts)"),
              "0");
    EXPECT_EQ(raw_query(path,
                        "SELECT count(*) FROM jobs j WHERE j.state IS NOT (SELECT"
                        " json_extract(payload, '$.state') FROM job_events e WHERE"
                        " e.job_id = j.id AND e.kind = 'state' ORDER BY seq DESC LIMIT 1)"),
              "0");
    EXPECT_EQ(raw_query(path, "PRAGMA foreign_key_check"), "");
  }
  EXPECT_GT(reported_jobs.size(), 10u) << "the writer hardly got to work";
  EXPECT_GT(flushed, 100);
}

}  // namespace
}  // namespace t2::store
