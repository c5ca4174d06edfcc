// Opening a store: a new file gets the current schema in WAL mode; a corrupt,
// foreign or newer file stops start-up with a clear error and is left as it was.
#include <gtest/gtest.h>

#include <random>

#include "child_process.h"
#include "store/audit.h"
#include "store/schema.h"
#include "store/store.h"
#include "t2/error.h"
#include "test_util.h"

namespace t2::store {
namespace {

using test::raw_query;
using test::read_all;
using test::TempDir;

// Expects Store::open(path) to throw a t2::Error whose message holds `needle`,
// and the file's bytes to be exactly what they were before.
void expect_refused_untouched(const std::string& path, const std::string& needle) {
  std::string before = read_all(path);
  try {
    Store::open(path);
    FAIL() << "Store::open accepted " << path;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not modified"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_all(path), before) << "the refused file was modified";
}

// After recovery the file holds only what was committed before the crash.
void expect_refused_untouched_after_recovery(const std::string& path) {
  EXPECT_THROW(Store::open(path), Error);
  EXPECT_FALSE(schema::has_rollback_journal(path));
  EXPECT_EQ(raw_query(path, "SELECT count(*) FROM half"), "0");
  EXPECT_EQ(raw_query(path, "PRAGMA integrity_check"), "ok");
}

void make_store_with_rows(const std::string& path, int decisions) {
  auto store = Store::open(path);
  JobId job = store->submit_job({JobType::generate, {{"n", 1}}, 0, "s1"}).job.id;
  for (int i = 0; i < decisions; ++i) {
    NewDecision d;
    d.job = job;
    d.task = "math";
    d.strategy = "prompt";
    d.experts = {{"math", 1.0}};
    d.prompt = std::string(300, 'a' + i % 26);
    store->record_decision(d);
  }
}

TEST(Schema, NewFileGetsCurrentVersionInWalMode) {
  TempDir dir;
  std::string path = dir.file("t2.db");
  { auto store = Store::open(path); }
  EXPECT_EQ(raw_query(path, "PRAGMA user_version"), std::to_string(schema::kVersion));
  EXPECT_EQ(raw_query(path, "PRAGMA application_id"), std::to_string(schema::kApplicationId));
  EXPECT_EQ(raw_query(path, "PRAGMA journal_mode"), "wal");
}

TEST(Schema, ReopenKeepsRowsAndDoesNotMigrateAgain) {
  TempDir dir;
  std::string path = dir.file("t2.db");
  make_store_with_rows(path, 10);
  auto store = Store::open(path);
  EXPECT_EQ(store->audit().count({}), 10);
  EXPECT_EQ(store->integrity_check(), "ok");
  // Ids continue after the ones on disk.
  NewDecision d;
  d.strategy = "none";
  EXPECT_EQ(store->record_decision(d), 11);
}

TEST(Schema, NewerVersionIsRefusedAndUntouched) {
  TempDir dir;
  std::string path = dir.file("t2.db");
  make_store_with_rows(path, 5);
  raw_query(path, "PRAGMA user_version = " + std::to_string(schema::kVersion + 1));
  expect_refused_untouched(path, "newer");
  EXPECT_THROW(AuditReader::open(path), Error);
  EXPECT_EQ(read_all(path).size(), std::filesystem::file_size(path));
}

TEST(Schema, GarbageFileIsRefusedAndUntouched) {
  TempDir dir;
  std::string path = dir.file("t2.db");
  std::mt19937 rng(7);
  std::string junk(16384, '\0');
  for (char& c : junk) c = static_cast<char>(rng());
  test::write_all(path, junk);
  expect_refused_untouched(path, "corrupt");
}

TEST(Schema, CorruptPagesAreRefusedAndUntouched) {
  TempDir dir;
  std::string path = dir.file("t2.db");
  make_store_with_rows(path, 400);
  // Scribble over pages past the schema page: table and index b-trees.
  std::string bytes = read_all(path);
  ASSERT_GT(bytes.size(), 16u * 4096);
  for (size_t page = 3; page * 4096 < bytes.size(); page += 3) {
    for (size_t i = 0; i < 64; ++i) bytes[page * 4096 + i] = static_cast<char>(0xA5);
  }
  test::write_all(path, bytes);
  expect_refused_untouched(path, "corrupt");
}

TEST(Schema, ForeignDatabaseIsRefusedAndUntouched) {
  TempDir dir;
  std::string path = dir.file("other.db");
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "CREATE TABLE notes (body TEXT)", -1, &stmt, nullptr);
  sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  expect_refused_untouched(path, "no t2 schema version");
}

TEST(Schema, HotJournalFromACrashBeforeWalIsRolledBack) {
  TempDir dir;
  std::string path = dir.file("t2.db");
  test::ChildProcess torn({T2_STORE_CRASH_WRITER, "torn", path, "0"}, dir.file("child.log"));
  torn.wait();
  ASSERT_TRUE(schema::has_rollback_journal(path)) << "the helper left no hot journal";

  try {
    AuditReader::open(path);
    FAIL() << "a reader opened a file with a hot journal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("interrupted"), std::string::npos) << e.what();
  }
  // The writer replays the journal: the table made before BEGIN remains, the
  // uncommitted rows are gone, so it is a foreign database, refused untouched.
  expect_refused_untouched_after_recovery(path);
}

TEST(Schema, SecondWriterIsRefused) {
  TempDir dir;
  std::string path = dir.file("t2.db");
  auto first = Store::open(path);
  try {
    Store::open(path);
    FAIL() << "a second writer opened the store";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already open for writing"), std::string::npos);
  }
  // Readers need no lock.
  EXPECT_NO_THROW(AuditReader::open(path));
}

TEST(Schema, AuditReaderNeedsAnExistingT2Store) {
  TempDir dir;
  EXPECT_THROW(AuditReader::open(dir.file("missing.db")), Error);
  EXPECT_FALSE(std::filesystem::exists(dir.file("missing.db")));
}

}  // namespace
}  // namespace t2::store
