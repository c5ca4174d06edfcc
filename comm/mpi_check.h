// Checked MPI calls: T2_MPI_CHECK(MPI_Send(...)) throws t2::Error naming the
// call, file:line, the calling rank and MPI's own error text. Communicators of
// t2 use MPI_ERRORS_RETURN, so every failure arrives here instead of aborting.
#pragma once

#include <mpi.h>

#include <string>

namespace t2::comm {

// MPI's text for an error code ("MPI_ERR_RANK: invalid rank").
std::string mpi_error_text(int code);

// The rank in MPI_COMM_WORLD, or -1 before MPI_Init / after MPI_Finalize.
int world_rank_or_minus_one();

// Throws t2::Error for a failed call; what `T2_MPI_CHECK` expands to.
[[noreturn]] void mpi_fail(int code, const char* call, const char* file, int line);

}  // namespace t2::comm

#define T2_MPI_CHECK(call)                                          \
  do {                                                              \
    const int t2_mpi_rc_ = (call);                                  \
    if (t2_mpi_rc_ != MPI_SUCCESS)                                  \
      ::t2::comm::mpi_fail(t2_mpi_rc_, #call, __FILE__, __LINE__);  \
  } while (0)
