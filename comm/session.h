// comm::Session — MPI for one process: initialized on construction (thread
// level FUNNELED: only the thread that made the Session calls MPI), finalized on
// destruction. MPI_COMM_WORLD returns errors instead of aborting, so one lost
// peer does not take the rank down with it.
#pragma once

#include <mpi.h>

#include <string>

namespace t2::comm {

class Session {
 public:
  // Calls MPI_Init_thread (argc and argv may be null); sets the log rank
  // (t2/log.h) to this rank.
  Session(int* argc = nullptr, char*** argv = nullptr);
  ~Session();  // MPI_Finalize (returns even with a lost peer's collective pending)
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& host() const { return host_; }

 private:
  int rank_ = 0;
  int size_ = 1;
  std::string host_;
};

}  // namespace t2::comm
