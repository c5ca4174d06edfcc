// The simulated world: ranks with a nominal speed (what the coordinator is told)
// and a true one (what they do), and the true cost of a batch, which the cost
// model never sees — it has different per-token costs from the model's priors,
// noise, and now and then a straggler. Invariant: true seconds are positive.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "scheduler/types.h"

namespace t2::scheduler::sim {

struct SimRank {
  RankId id = 0;
  double nominal_speed = 1;
  double true_speed = 1;
};

struct Cluster {
  std::vector<SimRank> ranks;
  double true_capacity() const;  // sum of true speeds
};

// heterogeneous: a quarter at nominal speed 0.5, half at 1, a quarter at 2 (CPU
// ranks of two sizes beside GPU ones); true speed is nominal within ~10 %.
Cluster make_cluster(std::size_t ranks, bool heterogeneous, std::uint64_t seed);

// What a batch really is, once run: the true output and depth are known.
struct Batch {
  ShardKind kind = ShardKind::kGenerate;
  Path path = Path::kDense;
  bool two_pass = false;
  double depth = 1;
  std::uint32_t requests = 0;
  std::uint64_t prompt_tokens = 0;
  std::uint64_t output_tokens = 0;
  std::uint32_t longest_output = 0;  // batched decode runs this many steps
};

struct Hardware {
  // Seconds per unit on a speed-1 rank, per path: prefill token, decoded token
  // (per sequence), decode step (per batch).
  double prefill[kPathCount] = {1.5e-4, 1.6e-4, 3.5e-4};
  double decode[kPathCount] = {6e-4, 6.5e-4, 1.5e-3};
  double step[kPathCount] = {1.5e-2, 1.6e-2, 2.5e-2};
  double first_pass_token = 1.5e-4, first_pass_request = 0.03;
  double backward_token = 9e-4;
  double per_request = 4e-3, per_shard = 0.2;

  double noise_sigma = 0.1;               // lognormal noise on every run
  double straggler_probability = 0.01;    // a run this unlucky takes 3-8x longer
};

double clean_seconds(const Hardware& hw, const Batch& batch);  // speed 1, no noise
double true_seconds(const Hardware& hw, const Batch& batch, const SimRank& rank,
                    std::mt19937_64& rng);

}  // namespace t2::scheduler::sim
