// SVF expert files (docs/method.md §1): one raw vector p per adapted matrix, saved
// as a safetensors file with one F32 tensor [rank] per slot ("blk.N.ffn_up") and
// the expert's description in the metadata. A file is accepted only for the base
// model and matrix set it was trained on, with every shape right and every
// value finite; writes are atomic, so a reader never sees half a file.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backbone/svf.h"

namespace t2::backbone {

struct Expert {
  std::string name, task;
  std::string base_model_sha256;
  MatrixSet set = MatrixSet::kMlp;
  std::string parametrization = "sigmoid";             // z = sigmoid(p); the only one so far
  std::vector<float> p;                                // length total_rank, slot order
  nlohmann::json training = nlohmann::json::object();  // recipe, steps, seed, ...
  double validation_accuracy = 0.0;
  std::string created;  // ISO 8601, UTC

  // z = sigmoid(p) of the whole vector, slot order.
  std::vector<float> z() const;
};

// A fresh expert for `svf` as the reference code starts one: p = 0.1 + 0.01 N(0, 1).
// (sigmoid(0.1) is about 0.525; the rescale by sum(s)/sum(s*z) keeps W' close to W.)
Expert expert_init(const Svf& svf, std::string name, std::string task, uint64_t seed);

// Writes `expert` to `path` (temp file + rename). Throws t2::Error when the
// expert does not fit `svf` (hash, set, length) or holds non-finite values.
void expert_save(const std::string& path, const Expert& expert, const Svf& svf);

// Reads and checks an expert file against `svf`: format, base model hash, matrix
// set, one tensor of the right shape per slot and nothing else, finite values.
// Throws t2::Error saying what was expected, what was found and the likely fix.
Expert expert_load(const std::string& path, const Svf& svf);

// The current UTC time as "2025-01-31T12:34:56Z".
std::string utc_now_iso8601();

}  // namespace t2::backbone
