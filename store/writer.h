// The store's single writer: one thread owns the write connection and commits
// queued operations in order, one transaction per batch (one op when idle, many
// when busy). An op that fails is rolled back alone; the rest of its batch commits.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "store/sqlite.h"

namespace t2::store {

struct WriterStats {
  int64_t ops_committed = 0;
  int64_t ops_failed = 0;  // queued ops that failed (callers that wait get the error)
  int64_t transactions = 0;
  int64_t largest_batch = 0;
  int64_t queued = 0;
  std::string last_error;  // of the last failed queued op
  double cpu_seconds = 0;  // CPU time of the writer thread so far
};

class Writer {
 public:
  using Op = std::function<void(sql::Db&)>;

  // max_batch: ops per transaction; max_queue: post() blocks beyond this.
  Writer(sql::Db db, size_t max_batch, size_t max_queue);
  ~Writer();  // commits everything queued, then closes the connection
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Queues `op`; it commits with a later batch. A failure is logged and counted.
  void post(Op op);

  // Runs `f` on the writer thread and returns its result once its transaction
  // committed (durable as the connection's synchronous setting makes it).
  // Rethrows what `f` threw; `f` then changed nothing.
  template <typename F>
  auto call(F&& f) -> std::invoke_result_t<F, sql::Db&> {
    using R = std::invoke_result_t<F, sql::Db&>;
    if constexpr (std::is_void_v<R>) {
      run_and_wait(Op(std::forward<F>(f)));
    } else {
      std::optional<R> out;
      run_and_wait([&](sql::Db& db) { out = f(db); });
      return std::move(*out);
    }
  }

  // Returns once every op queued before the call has committed (or failed).
  void flush();

  WriterStats stats() const;

 private:
  struct Item {
    Op op;
    std::promise<void>* done = nullptr;  // null: queued op, nobody waits
  };

  void run_and_wait(Op op);
  void enqueue(Item item);
  void loop();
  void commit_batch(std::deque<Item>& batch);
  void run_batch(std::deque<Item>& batch, std::vector<std::exception_ptr>& errors,
                 bool savepoints);

  sql::Db db_;
  const size_t max_batch_;
  const size_t max_queue_;

  mutable std::mutex mutex_;
  std::condition_variable has_work_;
  std::condition_variable has_room_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  WriterStats stats_;

  std::thread thread_;  // last: starts after every member above exists
};

}  // namespace t2::store
