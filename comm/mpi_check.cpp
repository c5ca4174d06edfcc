// Error reporting of checked MPI calls (see mpi_check.h).
#include "comm/mpi_check.h"

#include "t2/error.h"

namespace t2::comm {

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " +
                                                                    std::to_string(code);
  return std::string(text, size_t(length));
}

int world_rank_or_minus_one() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return -1;
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

void mpi_fail(int code, const char* call, const char* file, int line) {
  fail("{} failed at {}:{} on rank {}: {}", call, file, line, world_rank_or_minus_one(),
       mpi_error_text(code));
}

}  // namespace t2::comm
