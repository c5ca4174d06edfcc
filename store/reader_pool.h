// Read-only connections to one store file, lent one per query. Readers never
// share the writer's connection; in WAL mode they see the last commit and never
// wait for the writer, and their busy timeout covers WAL recovery at start.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/sqlite.h"

namespace t2::store {

class ReaderPool {
 public:
  ReaderPool(std::string path, int busy_timeout_ms, size_t max_idle = 8);

  // A connection for the caller alone; it returns to the pool when dropped.
  class Lease {
   public:
    Lease(ReaderPool& pool, std::unique_ptr<sql::Db> db) : pool_(pool), db_(std::move(db)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool_.give_back(std::move(db_)); }
    sql::Db& db() { return *db_; }

   private:
    ReaderPool& pool_;
    std::unique_ptr<sql::Db> db_;
  };

  Lease acquire();
  const std::string& path() const { return path_; }

 private:
  void give_back(std::unique_ptr<sql::Db> db);

  std::string path_;
  int busy_timeout_ms_;
  size_t max_idle_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<sql::Db>> idle_;
};

}  // namespace t2::store
