// Runs untrusted Python (a model's code answer plus the task's tests) in a child
// process, never in ours: fresh temp dir, CPU and address-space limits, a
// wall-clock kill of the whole process group, and no network where the kernel
// lets us make a new network namespace.
#pragma once

#include <cstdint>
#include <string>

namespace t2::adaptation {

struct SandboxLimits {
  double wall_seconds = 10.0;  // the child's process group is killed after this
  int cpu_seconds = 5;         // RLIMIT_CPU
  int64_t memory_bytes = int64_t(512) << 20;  // RLIMIT_AS
  int64_t file_bytes = int64_t(16) << 20;     // RLIMIT_FSIZE
  std::string python = "python3";
  // When true, a kernel that refuses a new network namespace makes every run
  // fail instead of running with the network reachable.
  bool require_no_network = false;
};

enum class SandboxStatus {
  kPassed,    // exit status 0
  kFailed,    // non-zero exit (an assert, an exception, a syntax error)
  kTimeout,   // killed by the wall clock or the CPU limit
  kMemory,    // ran out of its address space (MemoryError or killed)
  kError,     // could not be started (no python3, no temp dir, ...)
};
const char* sandbox_status_name(SandboxStatus status);

struct SandboxResult {
  SandboxStatus status = SandboxStatus::kError;
  int exit_code = -1;       // when it exited
  int signal = 0;           // when it was killed
  bool network_isolated = false;
  double seconds = 0.0;
  std::string output;       // the tail of stdout and stderr together
  std::string summary() const;  // "passed", "failed: AssertionError", "timeout", ...
};

// Writes `program` to a fresh temp dir and runs `python3 -I program.py` there.
// Thread-safe; each call has its own dir, removed afterwards.
SandboxResult run_python(const std::string& program, const SandboxLimits& limits);

// Whether this process may create a network namespace (tried once, cached).
bool sandbox_can_isolate_network();

}  // namespace t2::adaptation
