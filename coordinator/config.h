// The service's configuration, read from one TOML file by every rank (rank 0
// logs it resolved, once). Unknown keys are errors, so a typo never silently
// falls back to a default. Paths are resolved against the working directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace t2::coordinator {

struct ExpertFile {
  std::string name;
  std::string file;  // an SVF expert (safetensors) of this model and matrix set
};

struct ServiceConfig {
  std::string origin;  // the file it came from

  // [model]
  std::string model_path;
  std::string matrix_set = "mlp";
  std::string cache_dir;  // SVD factors; empty: the default cache

  // [store]
  std::string store_path = "var/t2.db";
  bool fsync_each_commit = true;

  // [http]
  std::string listen_address = "127.0.0.1";
  uint16_t listen_port = 8080;
  std::string token;  // resolved: from `token`, else the variable `token_env` names
  std::string token_source;
  size_t max_body_bytes = size_t(1) << 20;
  double read_timeout_s = 10;
  int http_threads = 2;
  double request_timeout_s = 300;  // synchronous generation

  // [tasks]
  std::string tasks_dir;
  std::string data_root;
  std::vector<std::string> tasks;  // what jobs may name; empty: every task in tasks_dir

  // [[experts]]
  std::vector<ExpertFile> experts;

  // [worker]
  int worker_threads = 1;   // OpenMP threads per worker rank
  int batch_size = 8;       // sequences generated together
  double heartbeat_s = 1.0;
  double lost_after_s = 30; // silence after which a rank counts as lost

  // [train]
  int checkpoint_every = 2;  // steps between checkpoints

  // [scheduler]
  uint32_t max_shard_batch = 8;
  double min_shard_seconds = 2.0;
  double drain_timeout_s = 60;  // SIGTERM: how long running work may take to finish
};

// Parses TOML text; `origin` names it in errors. Throws t2::Error naming the
// key and what it expected.
ServiceConfig parse_config(const std::string& text, const std::string& origin);
ServiceConfig load_config(const std::string& path);

// The resolved configuration as aligned "key  value" lines (the token masked).
std::vector<std::string> describe(const ServiceConfig& config);

}  // namespace t2::coordinator
