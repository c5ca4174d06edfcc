// Resumable training state of an expert: p, Adam's moments and step count, the
// step reached, the seed and the best validated p so far, in one safetensors file
// written atomically (a crash leaves the previous checkpoint whole). The random
// state is (seed, step): every batch and sample seed is derived from the two, so
// a resumed run continues exactly as an uninterrupted one would.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backbone/svf.h"

namespace t2::adaptation {

struct TrainCheckpoint {
  std::string task;
  std::string base_model_sha256;
  backbone::MatrixSet set = backbone::MatrixSet::kMlp;
  int64_t step = 0;         // steps done
  uint64_t seed = 0;
  std::vector<float> p;     // [total_rank]
  std::vector<float> adam_m, adam_v;
  int64_t adam_steps = 0;
  std::vector<float> best_p;
  double best_accuracy = -1.0;  // < 0: not validated yet
  int64_t best_step = -1;
  nlohmann::json settings = nlohmann::json::object();  // the training settings
};

// Writes `c` to `path` (temp file + rename). Throws t2::Error.
void checkpoint_save(const std::string& path, const TrainCheckpoint& c);

// Reads a checkpoint and checks it against `svf` (base model, matrix set, sizes,
// finite values). Throws t2::Error saying what does not match.
TrainCheckpoint checkpoint_load(const std::string& path, const backbone::Svf& svf);

}  // namespace t2::adaptation
