// Starts the store helper as a child process with its stdout on a pipe, so a
// test can kill it and then read every complete line it managed to write.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace t2::store::test {

class ChildProcess {
 public:
  // argv[0] is the program path; stderr goes to `stderr_path`.
  ChildProcess(const std::vector<std::string>& argv, const std::string& stderr_path) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int rc = posix_spawn(&pid_, argv[0].c_str(), &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      throw std::runtime_error("posix_spawn " + argv[0] + " failed");
    }
    read_fd_ = fds[0];
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
    if (read_fd_ >= 0) ::close(read_fd_);
  }

  void kill_now() { ::kill(pid_, SIGKILL); }

  // Waits for the child to end; returns its wait status.
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  // After the child ended: every complete line it wrote (a torn last line is dropped).
  std::vector<std::string> lines() {
    std::string text;
    char buffer[65536];
    ssize_t n;
    while ((n = ::read(read_fd_, buffer, sizeof buffer)) > 0) text.append(buffer, n);
    std::vector<std::string> out;
    size_t start = 0, end;
    while ((end = text.find('\n', start)) != std::string::npos) {
      out.push_back(text.substr(start, end - start));
      start = end + 1;
    }
    return out;
  }

 private:
  pid_t pid_ = -1;
  int read_fd_ = -1;
};

}  // namespace t2::store::test
