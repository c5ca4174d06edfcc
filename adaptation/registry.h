// adaptation::load_experts — the experts a command registers, by file or by name
// (DIR/<name>.safetensors), each checked against the SVF factors and given the
// dispatch category and description of the task it was trained on.
#pragma once

#include <string>
#include <vector>

#include "adaptation/dispatcher.h"
#include "adaptation/mixture.h"
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

// The mixture in `file` as Dispatcher weights, checked against `experts`: the
// model and matrix set (mixture_load), the same expert names, and the same
// files (each registered expert's SHA-256 equals the one the mixture recorded).
// Throws t2::Error naming the mismatch and the fix.
std::vector<MixtureWeight> mixture_weights(const std::string& file, const backbone::Svf& svf,
                                           const std::vector<LoadedExpert>& experts);

}  // namespace t2::adaptation
