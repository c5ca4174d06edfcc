// A `t2 serve` under mpirun for tests: a temp folder with a tiny Llama (GGUF),
// two tiny tasks (gsm8k format, numeric answers), a config, and the store;
// start, wait for health, drain (SIGTERM to rank 0), kill, restart on the same
// store. Requests go through coordinator::HttpClient.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/http_client.h"

namespace t2::test {

constexpr const char* kToken = "test-token-0123456789";

struct ServiceOptions {
  int ranks = 3;
  // Empty: the tiny model and tiny tasks written here; else a real model and
  // the project's tasks and data (benchmarks).
  std::string model_path, tasks_dir, data_root;
  int worker_threads = 1;
  int train_examples = 40;
  double read_timeout_s = 2;
  std::string extra_config;  // appended TOML
};

class Service {
 public:
  // Writes the model, tasks and config into a fresh temp folder.
  explicit Service(ServiceOptions options = {});
  ~Service();  // kills what still runs and removes the folder

  void start();  // mpirun in the background; returns once /v1/health says ok
  // SIGTERM to rank 0: the drain. Returns mpirun's exit status (-1 on timeout).
  int drain(double timeout_s = 120);
  void kill_all();  // SIGKILL the whole process group
  bool running() const;

  std::unique_ptr<coordinator::HttpClient> client(const std::string& token = kToken) const;
  nlohmann::json get(const std::string& target) const;  // 200 expected, JSON
  nlohmann::json post(const std::string& target, const nlohmann::json& body) const;
  // Waits until the job is terminal; returns its JSON.
  nlohmann::json wait_job(int64_t id, double timeout_s = 180) const;
  // Polls `done` every 100 ms until true or timeout; false on timeout.
  static bool wait_for(const std::function<bool()>& done, double timeout_s);

  std::vector<int> worker_pids() const;  // from /v1/health
  const std::string& dir() const { return dir_; }
  const std::string& url() const { return url_; }
  std::string log() const;  // what mpirun and the ranks printed

 private:
  ServiceOptions options_;
  std::string dir_, config_, url_;
  pid_t mpirun_ = -1;
  int starts_ = 0;
};

}  // namespace t2::test
