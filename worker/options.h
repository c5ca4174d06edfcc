// What a worker rank needs to know to start: the model, its SVD cache, where
// tasks and data live, and how it runs batches. cli/cmd_serve.cpp fills it
// from the service's TOML file.
#pragma once

#include <string>
#include <vector>

#include "adaptation/task.h"

namespace t2::worker {

struct WorkerOptions {
  std::string model_path;
  std::string matrix_set = "mlp";
  std::string cache_dir;  // empty: backbone::default_cache_dir()
  adaptation::TaskPaths task_paths;
  int threads = 1;        // OpenMP threads
  int batch_size = 8;     // sequences generated together
  double heartbeat_s = 1.0;
};

}  // namespace t2::worker
