// worker::run_worker — the loop of a worker rank of `t2 serve`. The calling
// thread owns MPI: it receives shards and training steps from rank 0, answers
// cancels at once, sends heartbeats; one compute thread runs the work in order
// and hands its results back through the channel. Rank 1 opens (or builds) the
// SVD cache first; the others map the same file read-only once it is there.
#pragma once

#include "comm/session.h"
#include "worker/options.h"

namespace t2::worker {

// Returns the process exit status: 0 after rank 0's shutdown message.
int run_worker(comm::Session& session, const WorkerOptions& options);

}  // namespace t2::worker
