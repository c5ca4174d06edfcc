// A small pool of read-only connections: opened on demand, kept while idle up
// to a cap, so a burst of audit queries does not reopen the file every time.
#include "store/reader_pool.h"

#include "store/schema.h"

namespace t2::store {

ReaderPool::ReaderPool(std::string path, int busy_timeout_ms, size_t max_idle)
    : path_(std::move(path)), busy_timeout_ms_(busy_timeout_ms), max_idle_(max_idle) {}

ReaderPool::Lease ReaderPool::acquire() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      auto db = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(db));
    }
  }
  auto db = std::make_unique<sql::Db>(path_, sql::Db::Mode::read_only, busy_timeout_ms_);
  schema::configure_reader(*db);
  return Lease(*this, std::move(db));
}

void ReaderPool::give_back(std::unique_ptr<sql::Db> db) {
  if (!db) return;
  db->rollback_quietly();  // never keep a read snapshot open between leases
  std::lock_guard lock(mutex_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(db));
}

}  // namespace t2::store
