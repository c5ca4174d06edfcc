// Sizing a training group by its estimated step time.
#include "scheduler/group_size.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace t2::scheduler {

double step_seconds(const std::function<double(std::uint32_t)>& slice_seconds,
                    std::uint32_t prompts, std::size_t group, const GroupOptions& options) {
  const std::size_t g = std::max<std::size_t>(group, 1);
  const auto per_rank = static_cast<std::uint32_t>((prompts + g - 1) / g);
  const double stages = std::ceil(std::log2(double(g)));
  return slice_seconds(per_rank) + options.allreduce_seconds_per_stage * stages;
}

std::size_t group_size(const std::function<double(std::uint32_t)>& slice_seconds,
                       std::uint32_t prompts, std::size_t cap, const GroupOptions& options) {
  const std::size_t limit = std::max<std::size_t>(1, std::min<std::size_t>(cap, prompts));
  std::vector<double> t(limit + 1);
  double best = 0;
  for (std::size_t g = 1; g <= limit; ++g) {
    t[g] = step_seconds(slice_seconds, prompts, g, options);
    if (g == 1 || t[g] < best) best = t[g];
  }
  for (std::size_t g = 1; g <= limit; ++g)
    if (t[g] <= best * (1 + options.tolerance)) return g;
  return limit;
}

}  // namespace t2::scheduler
