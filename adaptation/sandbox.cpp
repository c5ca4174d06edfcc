// The code sandbox. Between fork and exec the child makes only async-signal-safe
// system calls (our process runs OpenMP and logger threads), so every string it
// needs is prepared before the fork. The parent waits without reaping first
// (WNOWAIT), kills the whole process group, then reaps: stray grandchildren die
// with their parent and the group id cannot be reused in between.
#include "adaptation/sandbox.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "t2/error.h"
#include "t2/log.h"

namespace t2::adaptation {

namespace fs = std::filesystem;

namespace {

constexpr size_t kOutputTail = 4096;

// The executable `name` resolves to on PATH (or the name itself when it has a '/').
std::string find_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// In the child: a new network namespace; as root directly, else through a new
// user namespace. Returns whether it worked.
bool unshare_network() {
  if (::unshare(CLONE_NEWNET) == 0) return true;
  return ::unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0;
}

void set_limit(int resource, rlim_t soft, rlim_t hard) {
  struct rlimit rl{soft, hard};
  ::setrlimit(resource, &rl);
}

std::string read_tail(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > kOutputTail) text = "..." + text.substr(text.size() - kOutputTail);
  return text;
}

SandboxResult error_result(std::string message) {
  SandboxResult r;
  r.status = SandboxStatus::kError;
  r.output = std::move(message);
  return r;
}

}  // namespace

const char* sandbox_status_name(SandboxStatus status) {
  switch (status) {
    case SandboxStatus::kPassed: return "passed";
    case SandboxStatus::kFailed: return "failed";
    case SandboxStatus::kTimeout: return "timeout";
    case SandboxStatus::kMemory: return "memory";
    case SandboxStatus::kError: return "error";
  }
  return "?";
}

std::string SandboxResult::summary() const {
  std::string s = sandbox_status_name(status);
  if (status != SandboxStatus::kFailed && status != SandboxStatus::kError) return s;
  // The last non-empty output line names the exception ("AssertionError", ...).
  std::string last, line;
  std::stringstream lines(output);
  while (std::getline(lines, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  }
  if (last.size() > 120) last = last.substr(0, 117) + "...";
  return last.empty() ? s : s + ": " + last;
}

bool sandbox_can_isolate_network() {
  static std::once_flag once;
  static bool can = false;
  std::call_once(once, [] {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(unshare_network() ? 0 : 1);
    int status = 0;
    if (pid > 0 && ::waitpid(pid, &status, 0) == pid) {
      can = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    if (!can) {
      // LIMITATION: without CAP_SYS_ADMIN or unprivileged user namespaces the
      // sandboxed code can reach the network; run t2 where either is allowed.
      log::get("adapt")->warn(
          "sandbox: cannot create a network namespace here; code answers run WITH network "
          "access (set require_no_network to refuse)");
    }
  });
  return can;
}

SandboxResult run_python(const std::string& program, const SandboxLimits& limits) {
  const std::string python = find_executable(limits.python);
  if (python.empty()) return error_result("cannot find '" + limits.python + "' on PATH");
  const bool isolate = sandbox_can_isolate_network();
  if (!isolate && limits.require_no_network) {
    return error_result("no network namespace available and require_no_network is set");
  }

  // A fresh dir holding the program and its output. Readable by others: in a
  // new user namespace the child runs as the overflow uid.
  std::string templ = (fs::temp_directory_path() / "t2-sandbox-XXXXXX").string();
  if (!::mkdtemp(templ.data()))
    return error_result(std::string("mkdtemp: ") + std::strerror(errno));
  const fs::path dir = templ;
  ::chmod(dir.c_str(), 0755);
  const std::string script = (dir / "program.py").string();
  const std::string out_path = (dir / "output.txt").string();
  {
    std::ofstream f(script, std::ios::binary);
    f << program;
  }
  const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int status_pipe[2];
  if (out_fd < 0 || null_fd < 0 || ::pipe2(status_pipe, O_CLOEXEC) != 0) {
    if (out_fd >= 0) ::close(out_fd);
    if (null_fd >= 0) ::close(null_fd);
    fs::remove_all(dir);
    return error_result(std::string("sandbox setup: ") + std::strerror(errno));
  }

  // Everything the child touches, prepared before the fork.
  const std::string home = "HOME=" + dir.string();
  std::vector<const char*> argv{python.c_str(), "-I", "-B", script.c_str(), nullptr};
  std::vector<const char*> envp{"PATH=/usr/local/bin:/usr/bin:/bin", home.c_str(),
                                "LANG=C.UTF-8", "PYTHONHASHSEED=0", nullptr};
  const rlim_t cpu = rlim_t(std::max(1, limits.cpu_seconds));

  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out_fd), ::close(null_fd), ::close(status_pipe[0]), ::close(status_pipe[1]);
    fs::remove_all(dir);
    return error_result(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    const char net = unshare_network() ? 'N' : 'n';
    (void)!::write(status_pipe[1], &net, 1);
    set_limit(RLIMIT_CPU, cpu, cpu + 1);
    set_limit(RLIMIT_AS, rlim_t(limits.memory_bytes), rlim_t(limits.memory_bytes));
    set_limit(RLIMIT_FSIZE, rlim_t(limits.file_bytes), rlim_t(limits.file_bytes));
    set_limit(RLIMIT_CORE, 0, 0);
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    // Keep only the status pipe (as fd 3, close-on-exec) beside stdio.
    if (status_pipe[1] != 3) ::dup3(status_pipe[1], 3, O_CLOEXEC);
    ::close_range(4, ~0U, 0);
    set_limit(RLIMIT_NOFILE, 64, 64);
    ::execve(argv[0], const_cast<char* const*>(argv.data()), const_cast<char* const*>(envp.data()));
    const char failed = 'E';
    (void)!::write(3, &failed, 1);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from here, so the kill below never misses the group
  ::close(out_fd);
  ::close(null_fd);
  ::close(status_pipe[1]);

  // Wait (without reaping) until it exits or the wall clock runs out.
  const auto deadline = start + std::chrono::duration<double>(limits.wall_seconds);
  bool wall_killed = false;
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid)
      break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      wall_killed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(-pid, SIGKILL);  // grandchildren left in the group
  int wstatus = 0;
  struct rusage usage{};
  while (::wait4(pid, &wstatus, 0, &usage) < 0 && errno == EINTR) {
  }
  const double cpu_used = double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                          1e-6 * double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);

  SandboxResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string child_status(4, '\0');
  const ssize_t got = ::read(status_pipe[0], child_status.data(), child_status.size());
  ::close(status_pipe[0]);
  child_status.resize(size_t(std::max<ssize_t>(got, 0)));
  r.network_isolated = !child_status.empty() && child_status[0] == 'N';
  r.output = read_tail(out_path);
  fs::remove_all(dir);

  if (child_status.find('E') != std::string::npos) {
    r.status = SandboxStatus::kError;
    r.output = "cannot execute " + python;
  } else if (wall_killed) {
    r.status = SandboxStatus::kTimeout;
    r.signal = SIGKILL;
  } else if (WIFSIGNALED(wstatus)) {
    r.signal = WTERMSIG(wstatus);
    // SIGXCPU at the soft CPU limit, SIGKILL at the hard one; any other SIGKILL
    // is the kernel's OOM killer.
    const bool cpu_spent = cpu_used >= double(cpu) - 0.05;
    r.status = r.signal == SIGXCPU || (r.signal == SIGKILL && cpu_spent) ? SandboxStatus::kTimeout
               : r.signal == SIGKILL                                     ? SandboxStatus::kMemory
                                                                         : SandboxStatus::kFailed;
  } else {
    r.exit_code = WEXITSTATUS(wstatus);
    const bool out_of_memory = r.output.find("MemoryError") != std::string::npos;
    r.status = r.exit_code == 0 ? SandboxStatus::kPassed
               : out_of_memory  ? SandboxStatus::kMemory
                                : SandboxStatus::kFailed;
  }
  return r;
}

}  // namespace t2::adaptation
