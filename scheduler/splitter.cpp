// Cost-based splitting of an inference job into shards.
#include "scheduler/splitter.h"

#include <algorithm>
#include <numeric>

namespace t2::scheduler {

Split split_job(const Job& job, const CostModel& model, double ranks,
                const SplitOptions& options) {
  Split split;
  const std::size_t n = job.prompt_tokens.size();
  split.order.resize(n);
  std::iota(split.order.begin(), split.order.end(), 0u);
  std::stable_sort(split.order.begin(), split.order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return job.prompt_tokens[a] > job.prompt_tokens[b];
  });

  // The estimate is linear: a shard costs per_shard plus the sum of its prompts.
  const LinearParts parts = model.linear_parts(shard_template(job));
  const std::uint32_t max_batch = std::max<std::uint32_t>(options.max_batch, 1);
  auto prompt_cost = [&](std::uint32_t i) {
    return parts.per_request + parts.per_prompt_token * job.prompt_tokens[i];
  };
  double total = parts.per_shard * double((n + max_batch - 1) / max_batch);
  for (std::uint32_t i : split.order) total += prompt_cost(i);
  const double floor = std::max(options.min_shard_seconds,
                                parts.per_shard / std::max(options.max_overhead, 1e-3));
  const double target =
      std::clamp(total / std::max(1.0, ranks), std::min(floor, options.max_shard_seconds),
                 options.max_shard_seconds);

  // Greedy cut: close a shard when the next prompt would pass the target.
  ShardRange current{0, 0, 0, parts.per_shard};
  for (std::uint32_t k = 0; k < n; ++k) {
    const std::uint32_t i = split.order[k];
    const std::uint32_t size = current.end - current.begin;
    if (size > 0 && (size == max_batch || current.estimate + prompt_cost(i) > target)) {
      split.shards.push_back(current);
      current = {k, k, 0, parts.per_shard};
    }
    current.end = k + 1;
    current.prompt_tokens += job.prompt_tokens[i];
    current.estimate += prompt_cost(i);
  }
  if (current.end > current.begin) split.shards.push_back(current);
  return split;
}

}  // namespace t2::scheduler
