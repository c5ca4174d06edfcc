// The writer thread: takes what is queued (up to max_batch), runs it in one
// BEGIN IMMEDIATE ... COMMIT, then wakes the callers that wait. If an op fails,
// the batch is rolled back and replayed with a savepoint per op, so only that
// op is lost. Ops commit in queue order: flush() is a no-op queued behind the rest.
#include "store/writer.h"

#include <ctime>

#include "t2/error.h"
#include "t2/log.h"

namespace t2::store {

Writer::Writer(sql::Db db, size_t max_batch, size_t max_queue)
    : db_(std::move(db)), max_batch_(max_batch), max_queue_(max_queue) {
  thread_ = std::thread([this] { loop(); });
}

Writer::~Writer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  has_work_.notify_all();
  thread_.join();
  try {
    db_.exec("PRAGMA optimize");  // refreshes planner statistics where useful
  } catch (const Error& e) {
    log::get("store")->warn("PRAGMA optimize at close failed: {}", e.what());
  }
}

void Writer::post(Op op) { enqueue(Item{std::move(op), nullptr}); }

void Writer::run_and_wait(Op op) {
  std::promise<void> done;
  auto future = done.get_future();
  enqueue(Item{std::move(op), &done});
  future.get();
}

void Writer::flush() {
  run_and_wait([](sql::Db&) {});
}

void Writer::enqueue(Item item) {
  std::unique_lock lock(mutex_);
  // Back-pressure: a producer faster than the disk waits instead of growing memory.
  has_room_.wait(lock, [&] { return queue_.size() < max_queue_ || stopping_; });
  if (stopping_) fail("store: the store is closing; the write was not accepted");
  queue_.push_back(std::move(item));
  stats_.queued = static_cast<int64_t>(queue_.size());
  lock.unlock();
  has_work_.notify_one();
}

WriterStats Writer::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Writer::loop() {
  std::deque<Item> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      has_work_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, and everything is committed
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      stats_.queued = static_cast<int64_t>(queue_.size());
    }
    has_room_.notify_all();
    commit_batch(batch);
    batch.clear();

    timespec cpu{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    std::lock_guard lock(mutex_);
    stats_.cpu_seconds = cpu.tv_sec + cpu.tv_nsec / 1e9;
  }
}

namespace {
struct OpFailed {};
}  // namespace

// One transaction over the batch. Without savepoints the first failing op
// aborts it (OpFailed); with them each failing op is rolled back alone.
// BEGIN/COMMIT failures (disk full, I/O) propagate as they are.
void Writer::run_batch(std::deque<Item>& batch, std::vector<std::exception_ptr>& errors,
                       bool savepoints) {
  try {
    db_.exec("BEGIN IMMEDIATE");
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!savepoints) {
        try {
          batch[i].op(db_);
        } catch (...) {
          throw OpFailed{};
        }
        continue;
      }
      db_.exec("SAVEPOINT op");
      try {
        batch[i].op(db_);
        db_.exec("RELEASE op");
      } catch (...) {
        errors[i] = std::current_exception();
        db_.exec("ROLLBACK TO op");
        db_.exec("RELEASE op");
      }
    }
    db_.exec("COMMIT");
  } catch (...) {
    db_.rollback_quietly();
    throw;
  }
}

void Writer::commit_batch(std::deque<Item>& batch) {
  std::vector<std::exception_ptr> errors(batch.size());
  std::exception_ptr batch_error;

  // Optimistic: the whole batch in one transaction. If an op fails, roll the
  // batch back and replay it with a savepoint per op, so only the bad op drops.
  bool isolate = false;
  try {
    run_batch(batch, errors, false);
  } catch (const OpFailed&) {
    isolate = true;
  } catch (...) {
    batch_error = std::current_exception();
  }
  if (isolate) {
    std::fill(errors.begin(), errors.end(), nullptr);
    try {
      run_batch(batch, errors, true);
    } catch (...) {
      batch_error = std::current_exception();
    }
  }

  // Stats first, then wake the callers: flush() returning implies counted.
  int64_t failed = 0, dropped = 0;
  std::string last_error;
  for (size_t i = 0; i < batch.size(); ++i) {
    std::exception_ptr error = batch_error ? batch_error : errors[i];
    if (error) ++failed;
    if (!error || batch[i].done) continue;  // a waiting caller gets its own error
    ++dropped;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      last_error = e.what();
      log::get("store")->error("queued write failed and was dropped: {}", e.what());
    }
  }
  {
    std::lock_guard lock(mutex_);
    stats_.transactions += 1;
    stats_.ops_committed += static_cast<int64_t>(batch.size()) - failed;
    stats_.ops_failed += dropped;
    stats_.largest_batch = std::max<int64_t>(stats_.largest_batch, batch.size());
    if (!last_error.empty()) stats_.last_error = last_error;
  }

  for (size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].done) continue;
    std::exception_ptr error = batch_error ? batch_error : errors[i];
    error ? batch[i].done->set_exception(error) : batch[i].done->set_value();
  }
}

}  // namespace t2::store
