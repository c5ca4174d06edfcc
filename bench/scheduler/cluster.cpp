// Simulated ranks and the true cost of a batch.
#include "bench/scheduler/cluster.h"

#include <algorithm>
#include <cmath>

namespace t2::scheduler::sim {

double Cluster::true_capacity() const {
  double sum = 0;
  for (const SimRank& r : ranks) sum += r.true_speed;
  return sum;
}

Cluster make_cluster(std::size_t ranks, bool heterogeneous, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> jitter(0.0, 0.1);
  Cluster c;
  for (std::size_t i = 0; i < ranks; ++i) {
    double nominal = 1.0;
    if (heterogeneous) nominal = (i % 4 == 0) ? 0.5 : (i % 4 == 3) ? 2.0 : 1.0;
    c.ranks.push_back({static_cast<RankId>(i + 1), nominal, nominal * jitter(rng)});
  }
  return c;
}

double clean_seconds(const Hardware& hw, const Batch& b) {
  const auto p = static_cast<std::size_t>(b.path);
  double s = hw.prefill[p] * double(b.prompt_tokens) * b.depth +
             hw.decode[p] * double(b.output_tokens) * b.depth +
             hw.step[p] * double(b.longest_output) * b.depth;
  if (b.two_pass)
    s += hw.first_pass_token * double(b.prompt_tokens) + hw.first_pass_request * b.requests;
  if (b.kind == ShardKind::kTrain)
    s += hw.backward_token * double(b.prompt_tokens + b.output_tokens) * b.depth;
  return s + hw.per_request * b.requests + hw.per_shard;
}

double true_seconds(const Hardware& hw, const Batch& batch, const SimRank& rank,
                    std::mt19937_64& rng) {
  std::lognormal_distribution<double> noise(0.0, hw.noise_sigma);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  double s = clean_seconds(hw, batch) / rank.true_speed * noise(rng);
  if (unit(rng) < hw.straggler_probability) s *= 3.0 + 5.0 * unit(rng);
  return std::max(s, 1e-3);
}

}  // namespace t2::scheduler::sim
