// comm::Channel — the only place a rank calls MPI after start-up. Other threads
// hand it envelopes to send and vectors to all-reduce; the thread that owns the
// Session calls poll() in its loop, which starts and completes sends, receives
// envelopes, and progresses collectives. Invariant: every MPI call of a rank
// happens inside poll(), drain() or the constructor, on that one thread.
#pragma once

#include <mpi.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "comm/envelope.h"
#include "comm/session.h"

namespace t2::comm {

constexpr int kTagEnvelope = 1;

struct Incoming {
  int source = 0;
  Envelope envelope;
};

// The sum, and the seconds from its start to its end on this rank.
struct AllreduceResult {
  std::vector<float> sum;
  double seconds = 0;
};

struct ChannelStats {
  int64_t sent = 0, received = 0;
  int64_t bytes_sent = 0, bytes_received = 0;
  int64_t allreduces = 0;
};

class Channel {
 public:
  explicit Channel(Session& session);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  // Any thread: queue `envelope` for world rank `dest`; sent by the next poll().
  void post(int dest, Envelope envelope);

  // Any thread: sums `data` over `group` (world ranks, sorted, this rank among
  // them). `key` names the group's communicator: the same key on every member,
  // never reused for another group. The future throws t2::Error when
  // abort_allreduce(key) ran first. The channel owns the buffer meanwhile, so an
  // aborted sum that MPI still holds never writes into freed memory.
  std::future<AllreduceResult> allreduce_sum(uint64_t key, std::vector<int> group,
                                             std::vector<float> data);
  // Any thread: a member of `key`'s group is gone; fail its all-reduce (running
  // or queued) and never use that communicator again.
  void abort_allreduce(uint64_t key);

  // Owner thread: create `key`'s communicator now (all members must call this
  // or allreduce_sum with the same key; it blocks until they have).
  void prepare_group(uint64_t key, const std::vector<int>& group);

  // Owner thread: one round of progress. Returns true when anything happened.
  bool poll(const std::function<void(Incoming&&)>& on_message);
  // Owner thread: keep polling (messages handed to on_message) until all queued
  // and started sends have completed, or `timeout_s` passed. True when drained.
  bool drain(double timeout_s, const std::function<void(Incoming&&)>& on_message);
  // Owner thread: `rank` is gone; its pending sends are dropped from drain()'s
  // wait (their buffers stay alive while MPI may still hold them).
  void abandon_sends_to(int rank);
  // True when an aborted all-reduce is still pending inside MPI.
  bool has_abandoned_collectives() const { return !abandoned_reduces_.empty(); }

  ChannelStats stats() const;

 private:
  struct Send {
    MPI_Request request = MPI_REQUEST_NULL;
    int dest = 0;
    std::vector<std::byte> bytes;
  };
  struct Reduce {
    uint64_t key = 0;
    std::vector<int> group;
    std::vector<float> data;
    std::promise<AllreduceResult> done;
    MPI_Request request = MPI_REQUEST_NULL;
    double started = 0;
  };

  bool start_sends();
  bool complete_sends();
  bool receive(const std::function<void(Incoming&&)>& on_message);
  bool progress_reduces();
  MPI_Comm comm_for(uint64_t key, const std::vector<int>& group);

  Session& session_;
  int rank_ = 0, size_ = 1;

  mutable std::mutex mutex_;  // guards outbox_, queued_, aborted_, stats_
  std::deque<std::pair<int, Envelope>> outbox_;
  std::deque<std::unique_ptr<Reduce>> queued_;
  std::set<uint64_t> aborted_;
  ChannelStats stats_;

  // Owner thread only.
  std::vector<Send> sending_;
  std::vector<Send> abandoned_sends_;  // to lost ranks
  std::vector<std::unique_ptr<Reduce>> running_;
  std::vector<std::unique_ptr<Reduce>> abandoned_reduces_;  // aborted, still inside MPI
  // LIMITATION: communicators are kept until exit (MPI_Comm_free is collective
  // and a member may be gone); a service that trains thousands of jobs without
  // restarting holds thousands of them. Freeing them at a job's end on every
  // member together would lift it.
  std::map<uint64_t, MPI_Comm> comms_;
  std::vector<std::byte> recv_buffer_;
};

}  // namespace t2::comm
