// MPI init and finalize for one process (see session.h).
#include "comm/session.h"

#include <cstdlib>

#include "comm/mpi_check.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::comm {

Session::Session(int* argc, char*** argv) {
  // Open MPI's shared-memory transport copies large messages straight out of the
  // sender's memory (CMA). When a worker dies in the middle of such a message the
  // receiver's copy fails inside the transport and rank 0 stops making progress,
  // so a lost worker could take the coordinator with it. Plain copies through the
  // shared segment leave a half-received message pending instead, which the
  // engine abandons with the lost rank. A value set by the user wins.
  setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", /*overwrite=*/0);
  int provided = 0;
  T2_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  if (provided < MPI_THREAD_FUNNELED)
    fail("MPI gives thread level {}, t2 needs MPI_THREAD_FUNNELED ({}); rebuild Open MPI "
         "with thread support", provided, MPI_THREAD_FUNNELED);
  T2_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  T2_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  T2_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  char name[MPI_MAX_PROCESSOR_NAME] = {0};
  int length = 0;
  T2_MPI_CHECK(MPI_Get_processor_name(name, &length));
  host_.assign(name, size_t(length));
  log::set_rank(rank_);
}

Session::~Session() {
  const int rc = MPI_Finalize();
  if (rc != MPI_SUCCESS) log::get("comm")->error("MPI_Finalize: {}", mpi_error_text(rc));
}

}  // namespace t2::comm
