// The scheduler's cost model in the engine: loaded from the store at start,
// taught by every finished placement (the planner does the learning), saved back
// a few seconds after it changes and at the drain, and its error reported per
// job, in /v1/health and in /metrics. Invariant: the state in the store is one
// the model wrote; one that does not parse is logged and the priors used.
#include "coordinator/engine_impl.h"

#include <fmt/format.h>

#include "t2/error.h"

namespace t2::coordinator {

using nlohmann::json;

namespace {

constexpr const char* kCostModelKey = "scheduler.cost_model";
constexpr double kSaveEvery = 5.0;  // seconds between saves while it learns

}  // namespace

void Engine::Impl::load_cost_model() {
  std::optional<json> state;
  try {
    state = store.load_state(kCostModelKey);
  } catch (const std::exception& e) {
    log->warn("cost model: could not read its saved state ({}); starting from the priors",
              e.what());
  }
  if (state) {
    try {
      // The planner holds a reference to `cost`: assign in place, before any rank joins.
      cost = scheduler::CostModel::from_json(*state);
      log->info("cost model loaded: learned from {} shard(s), MAPE {:.1f} % over the last {}",
                cost.observations(), 100 * cost.mape(), cost.mape_shards());
    } catch (const std::exception& e) {
      log->warn("cost model: saved state refused ({}); starting from the priors", e.what());
    }
  } else {
    log->info("cost model: no saved state; starting from the priors");
  }
  std::lock_guard lock(mutex);
  cost_mape = cost.mape();
  cost_mape_shards = int64_t(cost.mape_shards());
  cost_shards = cost_restored_shards = int64_t(cost.observations());
}

void Engine::Impl::learned(SchedJobId id, const scheduler::Completion& c, double now) {
  auto job = jobs.find(id);
  if (job != jobs.end()) {
    job->second.cost_error_sum += c.absolute_error;
    ++job->second.cost_error_shards;
  }
  log->debug("job {} placement {} on rank {}: estimated {:.3f} s, measured {:.3f} s "
             "({:.0f} % off)", id, c.id, c.rank, c.estimated_seconds, c.measured_seconds,
             100 * c.absolute_error);
  cost_dirty = true;
  {
    std::lock_guard lock(mutex);
    cost_mape = cost.mape();
    cost_mape_shards = int64_t(cost.mape_shards());
    cost_shards = int64_t(cost.observations());
  }
  save_cost_model(now, false);
}

void Engine::Impl::save_cost_model(double now, bool force) {
  if (!cost_dirty || (!force && now - cost_saved_at < kSaveEvery)) return;
  try {
    store.save_state(kCostModelKey, cost.to_json());
    cost_dirty = false;
    cost_saved_at = now;
  } catch (const std::exception& e) {
    cost_saved_at = now;  // try again later, not on every tick
    log->error("cost model: could not save its state: {}", e.what());
  }
}

json Engine::Impl::cost_summary(const LiveJob& job) const {
  const double job_mape = job.cost_error_shards > 0
                              ? job.cost_error_sum / double(job.cost_error_shards)
                              : 0.0;
  return {{"job_mape", job_mape},
          {"job_shards", job.cost_error_shards},
          {"mape", cost.mape()},
          {"mape_shards", cost.mape_shards()},
          {"shards", cost.observations()}};
}

void Engine::Impl::log_cost(const LiveJob& job) const {
  const double job_mape = job.cost_error_shards > 0
                              ? job.cost_error_sum / double(job.cost_error_shards)
                              : 0.0;
  log->info("job {} cost model: MAPE {:.1f} % over its {} shard(s); {:.1f} % over the "
            "last {} of {} shard(s) learned", job.id, 100 * job_mape, job.cost_error_shards,
            100 * cost.mape(), cost.mape_shards(), cost.observations());
}

}  // namespace t2::coordinator
