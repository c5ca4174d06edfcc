// The MPI thread's progress loop (see channel.h): non-blocking sends kept until
// MPI completes them, probe-and-receive of envelopes, and MPI_Iallreduce on a
// communicator per group key, tested each round so an abort never blocks.
#include "comm/channel.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "comm/mpi_check.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::comm {
namespace {

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr int kMaxReceivesPerPoll = 64;
constexpr int kCreateGroupTag = 7001;

}  // namespace

Channel::Channel(Session& session)
    : session_(session), rank_(session.rank()), size_(session.size()) {}

Channel::~Channel() {
  // Sends still in flight keep their buffers alive until MPI lets go of them.
  for (Send& s : sending_) {
    int done = 0;
    if (s.request != MPI_REQUEST_NULL) MPI_Test(&s.request, &done, MPI_STATUS_IGNORE);
  }
}

void Channel::post(int dest, Envelope envelope) {
  if (dest < 0 || dest >= size_) fail("post to rank {}: there are ranks 0..{}", dest, size_ - 1);
  std::lock_guard lock(mutex_);
  outbox_.emplace_back(dest, std::move(envelope));
}

std::future<AllreduceResult> Channel::allreduce_sum(uint64_t key, std::vector<int> group,
                                                     std::vector<float> data) {
  if (!std::is_sorted(group.begin(), group.end()) ||
      std::find(group.begin(), group.end(), rank_) == group.end())
    fail("all-reduce {}: group must be sorted world ranks that include rank {}", key, rank_);
  auto r = std::make_unique<Reduce>();
  r->key = key;
  r->group = std::move(group);
  r->data = std::move(data);
  auto future = r->done.get_future();
  std::lock_guard lock(mutex_);
  if (aborted_.count(key)) {
    r->done.set_exception(std::make_exception_ptr(
        Error(fmt::format("all-reduce {} was aborted: a member of its group is gone", key))));
    return future;
  }
  queued_.push_back(std::move(r));
  return future;
}

void Channel::abort_allreduce(uint64_t key) {
  std::lock_guard lock(mutex_);
  aborted_.insert(key);
}

MPI_Comm Channel::comm_for(uint64_t key, const std::vector<int>& group) {
  auto it = comms_.find(key);
  if (it != comms_.end()) return it->second;
  MPI_Group world = MPI_GROUP_NULL, members = MPI_GROUP_NULL;
  T2_MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world));
  T2_MPI_CHECK(MPI_Group_incl(world, int(group.size()), group.data(), &members));
  MPI_Comm comm = MPI_COMM_NULL;
  // Collective over the members only: rank 0 and other groups go on meanwhile.
  T2_MPI_CHECK(MPI_Comm_create_group(MPI_COMM_WORLD, members, kCreateGroupTag, &comm));
  T2_MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
  MPI_Group_free(&members);
  MPI_Group_free(&world);
  comms_.emplace(key, comm);
  log::get("comm")->debug("communicator {} over {} ranks", key, group.size());
  return comm;
}

void Channel::prepare_group(uint64_t key, const std::vector<int>& group) {
  if (group.size() > 1) comm_for(key, group);
}

bool Channel::start_sends() {
  std::deque<std::pair<int, Envelope>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(outbox_);
  }
  for (auto& [dest, envelope] : batch) {
    Send s;
    s.dest = dest;
    s.bytes = encode(envelope);
    T2_MPI_CHECK(MPI_Isend(s.bytes.data(), int(s.bytes.size()), MPI_BYTE, dest, kTagEnvelope,
                           MPI_COMM_WORLD, &s.request));
    std::lock_guard lock(mutex_);
    ++stats_.sent;
    stats_.bytes_sent += int64_t(s.bytes.size());
    sending_.push_back(std::move(s));
  }
  return !batch.empty();
}

bool Channel::complete_sends() {
  bool any = false;
  for (Send& s : sending_) {
    int done = 0;
    // A send to a lost rank may never complete; it stays here, harmless.
    if (MPI_Test(&s.request, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done) {
      s.request = MPI_REQUEST_NULL;
      any = true;
    }
  }
  std::erase_if(sending_, [](const Send& s) { return s.request == MPI_REQUEST_NULL; });
  return any;
}

bool Channel::receive(const std::function<void(Incoming&&)>& on_message) {
  bool any = false;
  for (int i = 0; i < kMaxReceivesPerPoll; ++i) {
    int flag = 0;
    MPI_Status status;
    T2_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kTagEnvelope, MPI_COMM_WORLD, &flag, &status));
    if (!flag) break;
    int count = 0;
    T2_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &count));
    recv_buffer_.resize(size_t(count));
    T2_MPI_CHECK(MPI_Recv(recv_buffer_.data(), count, MPI_BYTE, status.MPI_SOURCE, kTagEnvelope,
                          MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    {
      std::lock_guard lock(mutex_);
      ++stats_.received;
      stats_.bytes_received += count;
    }
    any = true;
    Incoming in;
    in.source = status.MPI_SOURCE;
    try {
      in.envelope = decode(recv_buffer_);
    } catch (const Error& e) {
      log::get("comm")->error("dropped a message from rank {}: {}", in.source, e.what());
      continue;
    }
    on_message(std::move(in));
  }
  return any;
}

bool Channel::progress_reduces() {
  bool any = false;
  std::set<uint64_t> aborted;
  {
    std::lock_guard lock(mutex_);
    while (!queued_.empty()) {
      running_.push_back(std::move(queued_.front()));
      queued_.pop_front();
      any = true;
    }
    aborted = aborted_;
  }
  for (auto& r : running_) {
    if (aborted.count(r->key)) {
      r->done.set_exception(std::make_exception_ptr(Error(fmt::format(
          "all-reduce {} was aborted: a member of its group is gone", r->key))));
      // The request may stay pending inside MPI forever: keep it and its buffer.
      if (r->request != MPI_REQUEST_NULL) abandoned_reduces_.push_back(std::move(r));
      r.reset();
      any = true;
      continue;
    }
    if (r->request == MPI_REQUEST_NULL) {
      r->started = seconds_now();
      if (r->group.size() == 1) {  // alone: the sum is the data itself
        r->done.set_value({std::move(r->data), 0.0});
        r.reset();
        any = true;
        continue;
      }
      MPI_Comm comm = comm_for(r->key, r->group);
      T2_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, r->data.data(), int(r->data.size()), MPI_FLOAT,
                                  MPI_SUM, comm, &r->request));
      any = true;
    }
    int done = 0;
    const int rc = MPI_Test(&r->request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      r->done.set_exception(std::make_exception_ptr(
          Error(fmt::format("all-reduce {} failed on rank {}: {}", r->key, rank_,
                            mpi_error_text(rc)))));
      abandoned_reduces_.push_back(std::move(r));
      any = true;
    } else if (done) {
      const double seconds = seconds_now() - r->started;
      r->done.set_value({std::move(r->data), seconds});
      {
        std::lock_guard lock(mutex_);
        ++stats_.allreduces;
      }
      r.reset();
      any = true;
    }
  }
  std::erase_if(running_, [](const auto& r) { return !r; });
  return any;
}

bool Channel::poll(const std::function<void(Incoming&&)>& on_message) {
  bool any = start_sends();
  any = receive(on_message) || any;
  any = progress_reduces() || any;
  any = complete_sends() || any;
  return any;
}

bool Channel::drain(double timeout_s, const std::function<void(Incoming&&)>& on_message) {
  const double until = seconds_now() + timeout_s;
  while (seconds_now() < until) {
    poll(on_message);
    bool empty;
    {
      std::lock_guard lock(mutex_);
      empty = outbox_.empty();
    }
    if (empty && sending_.empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

void Channel::abandon_sends_to(int rank) {
  for (Send& s : sending_)
    if (s.dest == rank) {
      abandoned_sends_.push_back(std::move(s));
      s.dest = -1;
    }
  std::erase_if(sending_, [](const Send& s) { return s.dest < 0; });
  std::lock_guard lock(mutex_);
  std::erase_if(outbox_, [rank](const auto& e) { return e.first == rank; });
}

ChannelStats Channel::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace t2::comm
