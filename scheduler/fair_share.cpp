// The fair sojourn protocol: a virtual weighted processor-sharing cluster per
// priority, advanced lazily from one event to the next.
#include "scheduler/fair_share.h"

#include <algorithm>

namespace t2::scheduler {

void FairShare::advance(Clock& c, double now) {
  // Piecewise: between departures of the virtual cluster, virtual time runs at
  // capacity / (sum of weights); each departure lowers the sum.
  while (now > c.at) {
    if (c.sharing.empty() || c.weight <= 0) {
      c.at = now;
      return;
    }
    const double rate = capacity_ / c.weight;
    const auto [finish, id, weight] = *c.sharing.begin();
    const double reach = c.at + std::max(0.0, finish - c.time) / rate;
    if (reach > now) {
      c.time += (now - c.at) * rate;
      c.at = now;
      return;
    }
    c.time = std::max(c.time, finish);
    c.at = reach;
    c.sharing.erase(c.sharing.begin());
    c.weight = c.sharing.empty() ? 0.0 : std::max(0.0, c.weight - weight);
  }
}

void FairShare::set_capacity(double capacity, double now) {
  for (auto& [priority, clock] : clocks_) advance(clock, now);
  capacity_ = std::max(capacity, 1e-9);
}

void FairShare::add(JobId id, int priority, double weight, double size, double now) {
  Clock& c = clocks_[priority];
  advance(c, now);
  Entry e;
  e.priority = priority;
  e.weight = weight;
  e.finish = c.time + size / weight;
  entries_[id] = e;
  c.sharing.insert({e.finish, id, weight});
  c.weight += weight;
  activate(id);
}

void FairShare::activate(JobId id) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.active) return;
  it->second.active = true;
  order_.insert(key(id, it->second));
}

void FairShare::deactivate(JobId id) {
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.active) return;
  order_.erase(key(id, it->second));
  it->second.active = false;
}

void FairShare::forget(JobId id, bool cancelled) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  deactivate(id);
  const Entry& e = it->second;
  Clock& c = clocks_[e.priority];
  if (cancelled && c.sharing.erase({e.finish, id, e.weight}))
    c.weight = c.sharing.empty() ? 0.0 : std::max(0.0, c.weight - e.weight);
  entries_.erase(it);
}

bool FairShare::active(JobId id) const {
  auto it = entries_.find(id);
  return it != entries_.end() && it->second.active;
}

std::optional<JobId> FairShare::top() const {
  if (order_.empty()) return std::nullopt;
  return std::get<2>(*order_.begin());
}

double FairShare::virtual_finish(JobId id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? 0.0 : it->second.finish;
}

double FairShare::sharing_weight(int priority, double now) {
  Clock& c = clocks_[priority];
  advance(c, now);
  return c.weight;
}

}  // namespace t2::scheduler
