// Longest-first placement with one min-heap of ranks per distinct speed: the best
// rank of a speed class is its least-loaded one, so a shard is placed in
// O(classes + log ranks) instead of scanning every rank.
#include "scheduler/longest_first.h"

#include <algorithm>
#include <functional>
#include <numeric>
#include <queue>
#include <utility>

#include "t2/error.h"

namespace t2::scheduler {
namespace {

using Slot = std::pair<double, RankId>;  // (ready_at, id): min-heap order
using Heap = std::priority_queue<Slot, std::vector<Slot>, std::greater<>>;

struct SpeedClass {
  double speed;
  Heap heap;
};

}  // namespace

std::vector<Assignment> plan_longest_first(std::span<const double> seconds,
                                           std::span<const PlanRank> ranks) {
  std::vector<Assignment> plan;
  if (seconds.empty()) return plan;
  if (ranks.empty()) fail("cannot place {} shards: no ranks are available", seconds.size());

  // Classes fastest first, so that a tie in finish time goes to the faster rank.
  std::vector<SpeedClass> classes;
  for (const PlanRank& r : ranks) {
    if (!(r.speed > 0)) fail("rank {}: speed must be positive, found {}", r.id, r.speed);
    auto it = std::find_if(classes.begin(), classes.end(),
                           [&](const SpeedClass& c) { return c.speed == r.speed; });
    if (it == classes.end()) it = classes.insert(classes.end(), SpeedClass{r.speed, {}});
    it->heap.push({r.ready_at, r.id});
  }
  std::sort(classes.begin(), classes.end(),
            [](const SpeedClass& a, const SpeedClass& b) { return a.speed > b.speed; });

  std::vector<std::size_t> order(seconds.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return seconds[a] > seconds[b]; });

  plan.reserve(seconds.size());
  for (std::size_t item : order) {
    SpeedClass* best = nullptr;
    double best_finish = 0;
    for (SpeedClass& c : classes) {
      const double finish = c.heap.top().first + seconds[item] / c.speed;
      if (!best || finish < best_finish) {  // strict: on a tie the faster class stays
        best = &c;
        best_finish = finish;
      }
    }
    const auto [ready, id] = best->heap.top();
    best->heap.pop();
    best->heap.push({best_finish, id});
    plan.push_back({item, id, ready, best_finish});
  }
  return plan;
}

double makespan(std::span<const Assignment> plan) {
  double end = 0;
  for (const Assignment& a : plan) end = std::max(end, a.finish);
  return end;
}

}  // namespace t2::scheduler
