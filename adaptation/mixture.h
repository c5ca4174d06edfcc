// adaptation::Mixture — a stored expert mixture for one task (the output of
// `t2 fewshot`): JSON with the base model's hash, the matrix set, each expert's
// name, file and file hash, and alpha per expert (optionally per expert and
// matrix). Loading refuses a file made for another model or another expert set.
#pragma once

#include <string>
#include <vector>

#include "backbone/svf.h"
#include "nlohmann/json.hpp"

namespace t2::adaptation {

struct MixtureExpert {
  std::string name, path, sha256;
};

struct Mixture {
  std::string task;
  std::string model_sha256;
  backbone::MatrixSet set = backbone::MatrixSet::kMlp;
  std::vector<MixtureExpert> experts;
  std::vector<float> alpha;                    // one per expert, >= 0
  std::vector<std::vector<float>> slot_alpha;  // empty, or per expert n_slots values
  nlohmann::json search = nlohmann::json::object();  // settings and fitness, for the record
};

// Writes `m` as JSON (temp file + rename).
void mixture_save(const std::string& path, const Mixture& m);
// Reads and checks `path` against `svf` (model hash, matrix set, slot counts),
// each expert file's current SHA-256, and, when `expected_experts` is not empty,
// the expert names (same set, any order). Throws t2::Error naming the mismatch.
Mixture mixture_load(const std::string& path, const backbone::Svf& svf,
                     const std::vector<std::string>& expected_experts = {});

}  // namespace t2::adaptation
