// FairShare: which job gets the next shard. Strict order between priorities;
// within a priority, the fair sojourn protocol: a virtual cluster shares its
// capacity between jobs by weight (weighted processor sharing), and jobs are
// served in the order they would finish there. No job finishes later than its
// weighted share would let it (up to one shard), so a big job cannot starve
// small ones and is not starved by them; small jobs finish nearly as early as
// shortest-first would let them.
// Invariant: a job's virtual finish is fixed when it arrives: start + size/weight.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

#include "scheduler/types.h"

namespace t2::scheduler {

class FairShare {
 public:
  // Capacity of the cluster in reference seconds per second (sum of rank speeds).
  void set_capacity(double capacity, double now);

  // A new job of `size` reference seconds; it enters the virtual cluster now.
  void add(JobId id, int priority, double weight, double size, double now);
  void activate(JobId id);    // it has work to hand out
  void deactivate(JobId id);  // nothing to hand out now; keeps its place
  // The job is over. A finished job keeps its virtual share until its virtual
  // finish (the virtual cluster replays arrivals only); a cancelled one leaves it.
  void forget(JobId id, bool cancelled);

  bool active(JobId id) const;
  bool empty() const { return order_.empty(); }
  std::optional<JobId> top() const;  // highest priority, earliest virtual finish, lowest id

  double virtual_finish(JobId id) const;
  // Weight of the jobs still sharing the virtual cluster at this priority.
  double sharing_weight(int priority, double now);

 private:
  struct Entry {
    int priority = 0;
    double weight = 1;
    double finish = 0;  // virtual time at which weighted sharing would finish it
    bool active = false;
  };
  // LIMITATION: each priority's virtual cluster assumes the whole capacity,
  // though higher priorities take some: the order within a priority is right,
  // but shares used for splitting and group caps are overstated while higher
  // priorities are busy. Feeding each clock only the capacity left would lift it.
  struct Clock {  // the virtual processor-sharing cluster of one priority
    double time = 0;   // virtual time: reference seconds served per unit weight
    double at = 0;     // real time it was advanced to
    double weight = 0; // sum of weights of the jobs sharing it
    std::set<std::tuple<double, JobId, double>> sharing;  // (virtual finish, id, weight)
  };
  using Key = std::tuple<int, double, JobId>;  // (-priority, virtual finish, id)

  static Key key(JobId id, const Entry& e) { return {-e.priority, e.finish, id}; }
  void advance(Clock& clock, double now);

  double capacity_ = 1;
  std::unordered_map<JobId, Entry> entries_;
  std::set<Key> order_;
  std::map<int, Clock> clocks_;
};

}  // namespace t2::scheduler
