// Readers while the writer writes: threads of this process and a reader in
// another process query and aggregate during a stream of writes and never fail
// ("database is locked" included). Queued writes commit in order.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <atomic>
#include <thread>

#include "child_process.h"
#include "store/store.h"
#include "t2/error.h"
#include "test_util.h"

namespace t2::store {
namespace {

TEST(Concurrency, ReadersNeverFailWhileTheWriterWrites) {
  test::TempDir dir;
  std::string path = dir.file("t2.db");
  Options options;
  options.fsync_each_commit = false;  // more commits per second: more chances to collide
  auto store = Store::open(path, options);
  JobId job = store->submit_job({JobType::generate, {}, 0, "load"}).job.id;
  NewDecision seed;
  seed.strategy = "prompt";
  store->record_decision(seed);
  store->flush();

  std::atomic<bool> stop{false};
  std::atomic<int64_t> writes{0}, reads{0}, failures{0};
  std::string first_failure;
  std::mutex failure_mutex;

  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      NewDecision d;
      d.job = job;
      d.task = i % 2 ? "math" : "code";
      d.strategy = i % 3 ? "prompt" : "classifier";
      d.experts = {{"math", 0.5}, {"code", 0.5}};
      d.prompt = std::string(200, 'p');
      store->record_decision(d);
      if (i % 50 == 0) {
        store->submit_job({JobType::generate, {}, 0, std::nullopt});  // durable commits too
        store->flush();
      }
      writes += 1;
    }
  });

  auto reader = [&](int which) {
    while (!stop) {
      try {
        DecisionFilter f;
        if (which % 2) f.task = "math";
        store->query_decisions(f, {100, "", Order::newest_first});
        store->aggregate_decisions({GroupField::task, GroupField::expert}, {});
        store->get_job(job);
        if (which == 2) AuditReader::open(path)->count({});  // fresh connections too
        reads += 1;
      } catch (const std::exception& e) {
        std::lock_guard lock(failure_mutex);
        if (failures++ == 0) first_failure = e.what();
      }
    }
  };
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) readers.emplace_back(reader, i);

  test::ChildProcess other({T2_STORE_CRASH_WRITER, "read", path, "1.5"},
                           dir.file("reader.log"));
  int status = other.wait();
  auto lines = other.lines();
  stop = true;
  writer.join();
  for (auto& t : readers) t.join();

  EXPECT_EQ(failures.load(), 0) << first_failure;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << (lines.empty() ? "" : lines.back()) << "\n"
      << test::read_all(dir.file("reader.log"));
  EXPECT_GT(reads.load(), 10);
  EXPECT_GT(writes.load(), 1000);
  store->flush();
  EXPECT_EQ(store->integrity_check(), "ok");
}

TEST(Concurrency, FlushWaitsForEverythingQueuedBefore) {
  test::TempDir dir;
  auto store = Store::open(dir.file("t2.db"));
  JobId job = store->submit_job({}).job.id;
  std::vector<std::thread> producers;
  for (int t = 0; t < 4; ++t) {
    producers.emplace_back([&, t] {
      std::string key = fmt::format("k{}", t);
      for (int i = 0; i < 500; ++i) store->record_metric(job, key, i, i);
    });
  }
  for (auto& p : producers) p.join();
  store->flush();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(store->metrics(job, fmt::format("k{}", t)).size(), 500u);
  EXPECT_GT(store->stats().largest_batch, 1) << "busy writes were not batched";
}

TEST(Concurrency, ClosingCommitsWhatWasQueued) {
  test::TempDir dir;
  std::string path = dir.file("t2.db");
  {
    auto store = Store::open(path);
    for (int i = 0; i < 1000; ++i) {
      NewDecision d;
      d.strategy = "prompt";
      store->record_decision(d);
    }
  }  // no flush: the destructor drains the queue
  EXPECT_EQ(AuditReader::open(path)->count({}), 1000);
}

}  // namespace
}  // namespace t2::store
