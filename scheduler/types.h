// The vocabulary the scheduler shares with the coordinator: ids, the adaptation
// path a shard runs on, and a shard's complexity (what its cost depends on).
// Nothing here knows of models or messages; a ShardSpec is plain numbers and names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace t2::scheduler {

using JobId = std::uint64_t;
using RankId = int;
using PlacementId = std::uint64_t;

// How the adapted linear layers run (DESIGN.md §3). A two-pass request runs a
// first, dense pass to decide its adaptation; that is a flag beside the path.
enum class Path : std::uint8_t { kDense = 0, kMaterialized = 1, kFactored = 2 };
inline constexpr int kPathCount = 3;

enum class ShardKind : std::uint8_t { kGenerate = 0, kTrain = 1 };

std::string_view path_name(Path path);
Path path_from_name(std::string_view name);  // throws t2::Error on an unknown name

// The complexity of one shard: a batch of requests of one task and strategy.
struct ShardSpec {
  ShardKind kind = ShardKind::kGenerate;
  std::string task;
  std::string strategy;
  Path path = Path::kDense;
  bool two_pass = false;
  std::uint32_t requests = 1;        // batch size
  std::uint64_t prompt_tokens = 0;   // summed over the batch
  std::uint32_t max_new_tokens = 256;
};

// What a finished shard measured; the cost model learns from it.
struct Measurement {
  double seconds = 0;                // wall time on the rank that ran it
  std::uint64_t output_tokens = 0;   // summed over the batch
  double depth_fraction = 1.0;       // mean fraction of layers used (early exit)
};

}  // namespace t2::scheduler
