// Store lifecycle: take the file's writer lock, check the file before touching
// it, configure WAL, migrate, then start the writer thread and the reader pool.
// Closing drains the writer, so every queued write commits before the file closes.
#include "store/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <sqlite3.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "store/reader_pool.h"
#include "store/schema.h"
#include "store/writer.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::store {
namespace {

// An advisory lock on "<path>-lock": two coordinators writing one store would
// hand out the same decision ids. The kernel drops it when the process dies.
int acquire_writer_lock(const std::string& path) {
  std::string lock_path = path + "-lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    fail("store: cannot create lock file '{}': {} (check the directory exists and is "
         "writable)",
         lock_path, std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      fail("store: '{}' is already open for writing by another process; only one "
           "coordinator may write a store (readers such as t2 audit need no lock)",
           path);
    }
    fail("store: cannot lock '{}': {}", lock_path, std::strerror(err));
  }
  return fd;
}

// Turns off SQLite's global memory statistics, which take a mutex on every
// allocation. Only possible before SQLite initializes; harmless if it has.
void tune_sqlite_once() {
  static std::once_flag once;
  std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

}  // namespace

std::unique_ptr<Store> Store::open(const std::string& path, const Options& options) {
  return std::unique_ptr<Store>(new Store(path, options));
}

Store::Store(std::string path, const Options& options)
    : path_(std::move(path)), options_(options) {
  if (path_.empty() || path_ == ":memory:" || path_.front() == '\0') {
    fail("store: a database file path is needed (got '{}')", path_);
  }
  tune_sqlite_once();
  lock_fd_ = acquire_writer_lock(path_);
  try {
    schema::check_before_open(path_, options_.open_check, options_.busy_timeout_ms);

    sql::Db db(path_, sql::Db::Mode::read_write_create, options_.busy_timeout_ms);
    schema::configure_writer(db, options_.fsync_each_commit, options_.writer_cache_mib);
    int found = schema::migrate(db);
    next_decision_id_ = db.query_int("SELECT COALESCE(MAX(id), 0) + 1 FROM decisions");
    last_job_id_ = db.query_int("SELECT COALESCE(MAX(id), 0) FROM jobs");

    writer_ = std::make_unique<Writer>(std::move(db), options_.max_batch, options_.max_queue);
    readers_ = std::make_shared<ReaderPool>(path_, options_.busy_timeout_ms);
    audit_ = std::make_shared<AuditReader>(readers_);
    log::get("store")->info("opened '{}' (schema {} -> {}, fsync each commit: {}, redact "
                            "prompts: {})",
                            path_, found, schema::kVersion, options_.fsync_each_commit,
                            options_.redact_prompts);
  } catch (...) {
    writer_.reset();
    ::close(lock_fd_);
    throw;
  }
}

Store::~Store() {
  writer_.reset();  // drains the queue and closes the write connection
  audit_.reset();
  readers_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void Store::flush() { writer_->flush(); }

StoreStats Store::stats() const {
  WriterStats w = writer_->stats();
  return StoreStats{w.ops_committed, w.ops_failed, w.transactions, w.largest_batch,
                    w.queued,        w.last_error, w.cpu_seconds};
}

std::string Store::integrity_check() const {
  auto lease = readers_->acquire();
  return schema::integrity_check(lease.db());
}

}  // namespace t2::store
