// The code sandbox: passing and failing programs, an endless loop and a sleeper
// killed by the limits, a memory hog stopped by RLIMIT_AS, network attempts that
// fail, stray grandchildren killed, and nothing left behind in the temp dir.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "adaptation/sandbox.h"

namespace t2::adaptation {
namespace {

// CPU time is the tight limit; the wall clock is generous, since a loaded test
// machine can take seconds just to start the interpreter.
SandboxLimits fast_limits() {
  SandboxLimits limits;
  limits.cpu_seconds = 2;
  limits.wall_seconds = 30.0;
  limits.memory_bytes = int64_t(256) << 20;
  return limits;
}

TEST(Sandbox, PassingCode) {
  const auto r = run_python("def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\n",
                            fast_limits());
  EXPECT_EQ(r.status, SandboxStatus::kPassed) << r.output;
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.summary(), "passed");
}

TEST(Sandbox, FailingAssert) {
  const auto r = run_python("def add(a, b):\n    return a - b\n\nassert add(2, 3) == 5\n",
                            fast_limits());
  EXPECT_EQ(r.status, SandboxStatus::kFailed);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.summary().find("AssertionError"), std::string::npos) << r.summary();
}

TEST(Sandbox, SyntaxErrorFails) {
  const auto r = run_python("def broken(:\n", fast_limits());
  EXPECT_EQ(r.status, SandboxStatus::kFailed);
  EXPECT_NE(r.summary().find("SyntaxError"), std::string::npos) << r.summary();
}

TEST(Sandbox, EndlessLoopKilledByCpuLimit) {
  SandboxLimits limits = fast_limits();
  limits.cpu_seconds = 1;
  limits.wall_seconds = 60.0;  // the CPU limit must fire first
  const auto r = run_python("while True:\n    pass\n", limits);
  EXPECT_EQ(r.status, SandboxStatus::kTimeout) << r.output;
  EXPECT_NE(r.signal, 0);
  EXPECT_LT(r.seconds, 60.0);
}

TEST(Sandbox, SleeperKilledByWallClock) {
  SandboxLimits limits = fast_limits();
  limits.wall_seconds = 1.0;
  const auto r = run_python("import time\nwhile True:\n    time.sleep(0.1)\n", limits);
  EXPECT_EQ(r.status, SandboxStatus::kTimeout);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_GE(r.seconds, 1.0);
  EXPECT_LT(r.seconds, 10.0);
}

TEST(Sandbox, MemoryHogStopped) {
  const auto big = run_python("x = bytearray(2 << 30)\nprint(len(x))\n", fast_limits());
  EXPECT_EQ(big.status, SandboxStatus::kMemory) << big.output;
  const auto growing = run_python(
      "chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))\n", fast_limits());
  EXPECT_EQ(growing.status, SandboxStatus::kMemory) << growing.output;
}

TEST(Sandbox, NetworkAttemptsFail) {
  if (!sandbox_can_isolate_network()) {
    // LIMITATION: no network namespace can be made here (no CAP_SYS_ADMIN, no
    // unprivileged user namespaces), so code could reach the network; what the
    // sandbox must then do is refuse whoever asks for isolation, and say why.
    SandboxLimits strict = fast_limits();
    strict.require_no_network = true;
    const auto r = run_python("print('ran')\n", strict);
    EXPECT_EQ(r.status, SandboxStatus::kError);
    EXPECT_FALSE(r.network_isolated);
    EXPECT_NE(r.output.find("network namespace"), std::string::npos) << r.output;
    return;
  }
  // In a fresh namespace only a downed loopback exists: every connect fails, even
  // to a listener of its own, and no name resolves.
  const auto r = run_python(
      "import socket, sys\n"
      "try:\n"
      "    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
      "    sys.exit('connected out')\n"
      "except OSError as e:\n"
      "    print('connect failed:', e)\n"
      "server = socket.socket()\n"
      "server.bind(('127.0.0.1', 0))\n"
      "server.listen()\n"
      "try:\n"
      "    socket.create_connection(server.getsockname(), timeout=2)\n"
      "    sys.exit('loopback is up')\n"
      "except OSError as e:\n"
      "    print('loopback connect failed:', e)\n"
      "names = [name for _, name in socket.if_nameindex()]\n"
      "if names != ['lo']:\n"
      "    sys.exit('interfaces: %s' % names)\n"
      "try:\n"
      "    socket.getaddrinfo('example.com', 80)\n"
      "    sys.exit('resolved a name')\n"
      "except OSError as e:\n"
      "    print('resolve failed:', e)\n",
      fast_limits());
  EXPECT_TRUE(r.network_isolated);
  EXPECT_EQ(r.status, SandboxStatus::kPassed) << r.output;
}

TEST(Sandbox, RunsInAFreshTempDirAndCleansUp) {
  const auto r = run_python(
      "import os\nprint(os.getcwd())\nprint(os.getpid())\nopen('scratch.txt', 'w').write('x')\n",
      fast_limits());
  ASSERT_EQ(r.status, SandboxStatus::kPassed) << r.output;
  const auto newline = r.output.find('\n');
  const std::string cwd = r.output.substr(0, newline);
  const int pid = std::stoi(r.output.substr(newline + 1));
  EXPECT_NE(cwd.find("t2-sandbox-"), std::string::npos) << cwd;
  EXPECT_FALSE(std::filesystem::exists(cwd)) << "temp dir left behind";
  EXPECT_NE(pid, int(::getpid()));  // never in our own process
}

TEST(Sandbox, GrandchildrenAreKilled) {
  const auto r = run_python(
      "import os, time\n"
      "pid = os.fork()\n"
      "if pid == 0:\n"
      "    time.sleep(60)\n"
      "    os._exit(0)\n"
      "print(pid, flush=True)\n",
      fast_limits());
  ASSERT_EQ(r.status, SandboxStatus::kPassed) << r.output;
  const int grandchild = std::stoi(r.output);
  // Killed with the group: gone, or a zombie waiting for its new parent to reap it.
  bool alive = false;
  for (int i = 0; i < 100; ++i) {
    std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
    std::string pid_field, comm, state;
    alive = bool(stat >> pid_field >> comm >> state) && state != "Z";
    if (!alive) break;
    usleep(10000);
  }
  EXPECT_FALSE(alive);
}

TEST(Sandbox, MissingInterpreterIsAnError) {
  SandboxLimits limits = fast_limits();
  limits.python = "python3-that-does-not-exist";
  const auto r = run_python("pass\n", limits);
  EXPECT_EQ(r.status, SandboxStatus::kError);
  EXPECT_NE(r.output.find("python3-that-does-not-exist"), std::string::npos);
}

}  // namespace
}  // namespace t2::adaptation
