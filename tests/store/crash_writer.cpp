// Helper process for the store tests.
//   store_crash_writer write DB SEED   writes jobs, decisions and events forever,
//     printing a line after each durable step; the crash test SIGKILLs it.
//   store_crash_writer read DB SECONDS  runs audit queries for SECONDS and exits
//     non-zero if any failed (a reader in another process than the writer).
//   store_crash_writer torn DB 0  leaves DB with a hot rollback journal, as a
//     crash before the file reached WAL mode would.
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "store/store.h"
#include "t2/error.h"

namespace {

using namespace t2::store;

// One write(2) per line: a line is either wholly in the pipe or not at all.
template <typename... Args>
void say(fmt::format_string<Args...> format, Args&&... args) {
  std::string line = fmt::format(format, std::forward<Args>(args)...) + "\n";
  ssize_t ignored = ::write(STDOUT_FILENO, line.data(), line.size());
  (void)ignored;
}

int write_forever(const std::string& path, int seed) {
  auto store = Store::open(path);
  say("ready");
  std::mt19937 rng(static_cast<unsigned>(seed));
  const char* tasks[] = {"math", "code", "reasoning"};
  const char* experts[] = {"math", "code", "reasoning"};
  for (int iter = 0;; ++iter) {
    std::string submission = fmt::format("{}-{}", seed, iter);
    JobId job = store->submit_job({JobType::generate, {{"iter", iter}}, iter % 5, submission})
                    .job.id;
    say("job {} {}", submission, job);

    int n = 1 + static_cast<int>(rng() % 40);
    DecisionId last = 0;
    for (int k = 0; k < n; ++k) {
      NewDecision d;
      d.job = job;
      d.request_id = fmt::format("{}-{}", job, k);
      d.task = tasks[rng() % 3];
      d.strategy = k % 2 ? "classifier" : "prompt";
      int count = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < count; ++e) d.experts.push_back({experts[e], 1.0 / count});
      d.depth = count;  // the checker compares it with the expert rows it finds
      d.prompt = std::string(50 + rng() % 2000, static_cast<char>('a' + k % 26));
      last = store->record_decision(d);
      if (k % 2) store->complete_decision(last, {static_cast<double>(k), {}, 10.0, {}});
    }
    store->append_event(job, "progress", {{"decisions", n}});
    store->begin_attempt(job);
    say("state {} running", job);
    store->update_job_state(job, JobState::succeeded);
    say("state {} succeeded", job);
    store->flush();
    say("flushed {}", last);
  }
}

int leave_hot_journal(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  auto exec = [&](const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
    }
    sqlite3_finalize(stmt);
  };
  exec("PRAGMA cache_size = 2");  // spill pages into the file mid-transaction
  exec("CREATE TABLE half (x TEXT)");
  exec("BEGIN");
  for (int i = 0; i < 200; ++i) exec("INSERT INTO half VALUES (randomblob(2000))");
  say("torn");
  ::_exit(0);  // no COMMIT, no close: the journal stays hot
}

int read_for(const std::string& path, double seconds) {
  auto reader = AuditReader::open(path);
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int64_t queries = 0, errors = 0;
  while (std::chrono::steady_clock::now() < end) {
    try {
      DecisionFilter f;
      f.task = "math";
      reader->query(f, {50, "", Order::newest_first});
      reader->aggregate({GroupField::strategy}, {});
      queries += 2;
    } catch (const std::exception& e) {
      ++errors;
      std::fprintf(stderr, "reader error: %s\n", e.what());
    }
  }
  say("queries {} errors {}", queries, errors);
  return errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s write DB SEED | read DB SECONDS\n", argv[0]);
    return 2;
  }
  try {
    std::string mode = argv[1];
    if (mode == "write") return write_forever(argv[2], std::stoi(argv[3]));
    if (mode == "read") return read_for(argv[2], std::stod(argv[3]));
    if (mode == "torn") return leave_hot_journal(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store_crash_writer: %s\n", e.what());
    return 1;
  }
  return 2;
}
