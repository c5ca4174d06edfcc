// adaptation::load_experts — the experts a command registers, by file or by name
// (DIR/<name>.safetensors), each checked against the SVF factors and given the
// dispatch category and description of the task it was trained on.
#pragma once

#include <string>
#include <vector>

#include "adaptation/dispatcher.h"
#include "adaptation/task.h"

namespace t2::adaptation {

struct LoadedExpert {
  RegisteredExpert registered;
  std::string path;
};

// `specs`: expert names or .safetensors paths. Throws t2::Error on a missing or
// mismatched file, naming the directory searched.
std::vector<LoadedExpert> load_experts(const std::vector<std::string>& specs,
                                       const std::string& dir, const backbone::Svf& svf,
                                       const TaskPaths& paths = {});

std::vector<RegisteredExpert> registered(const std::vector<LoadedExpert>& experts);

}  // namespace t2::adaptation
