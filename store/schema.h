// The store's schema and its versioned migrations (PRAGMA user_version). Opening
// checks a file before anything writes to it: a corrupt file, a foreign file or
// one from a newer schema stops start-up with a clear error and stays untouched.
#pragma once

#include <string>

#include "store/options.h"
#include "store/sqlite.h"

namespace t2::store::schema {

// The version this build writes and reads; migrations lead up to it.
constexpr int kVersion = 2;
// PRAGMA application_id of t2 databases ("T2ST").
constexpr int kApplicationId = 0x54325354;

// Read-only inspection of an existing file at `path` (no-op when it does not
// exist or is empty). Throws t2::Error when the file is corrupt, is not a t2
// database, or has a newer schema. `check` picks the page-level check to run.
void check_before_open(const std::string& path, OpenCheck check, int busy_timeout_ms);

// True when "<path>-journal" holds a rollback journal (a crash before WAL mode).
bool has_rollback_journal(const std::string& path);

// Sets WAL, synchronous, foreign keys and cache on the write connection.
void configure_writer(sql::Db& db, bool fsync_each_commit, int cache_mib);

// Sets foreign keys, query_only and memory-mapped reads on a read connection.
void configure_reader(sql::Db& db);

// Applies every migration above the file's version in one transaction.
// Returns the version found before migrating.
int migrate(sql::Db& db);

// Throws when a read-only connection could not open `path` (a hot journal).
void expect_readable(const std::string& path);

// Throws unless the connection's database has exactly kVersion and t2's id;
// `path` names the file in the message.
void expect_current(sql::Db& db, const std::string& path);

// "ok" or the first problems PRAGMA integrity_check reports.
std::string integrity_check(sql::Db& db);

}  // namespace t2::store::schema
