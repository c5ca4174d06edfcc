// What the planner tells the coordinator. Every Placement is an adaptation
// decision of the service and becomes one decision row (job, shard, rank,
// estimate); a Completion fills that row in with the measured seconds, an Abort
// closes it without a result. Invariant: each placement id ends in exactly one
// Completion or Abort, unless the coordinator itself drops the job.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "scheduler/types.h"

namespace t2::scheduler {

enum class PlacementReason : std::uint8_t {
  kPlanned = 0,    // longest-first onto the rank where it finishes earliest
  kStolen = 1,     // taken from another rank's queue by a rank that ran dry
  kReissued = 2,   // a backup copy of a straggling shard
  kRecovered = 3,  // placed again after its rank disappeared
  kTrainStep = 4,  // one rank's slice of a training step
};

enum class AbortReason : std::uint8_t {
  kCancelled = 0,  // the job was cancelled
  kRankLost = 1,   // the rank disappeared
  kDuplicate = 2,  // another copy of the shard finished first
  kStepLost = 3,   // a peer of this training step disappeared; the step reruns
};

std::string_view reason_name(PlacementReason reason);
std::string_view reason_name(AbortReason reason);

struct Placement {
  PlacementId id = 0;
  JobId job = 0;
  std::uint32_t shard = 0;
  RankId rank = 0;
  double estimated_seconds = 0;
  double issued_at = 0;
  PlacementReason reason = PlacementReason::kPlanned;
  std::uint32_t requests = 0;   // batch size of the shard
  std::uint32_t step = 0;       // training: the step this slice belongs to
  std::vector<RankId> group;    // training: the ranks that all-reduce together
};

struct Abort {
  PlacementId id = 0;
  JobId job = 0;
  std::uint32_t shard = 0;
  RankId rank = 0;
  AbortReason reason = AbortReason::kCancelled;
};

struct Completion {
  PlacementId id = 0;
  JobId job = 0;
  std::uint32_t shard = 0;
  RankId rank = 0;
  double estimated_seconds = 0;
  double measured_seconds = 0;
  double absolute_error = 0;   // |estimate - measured| / measured, as the model scored it
  bool job_finished = false;
  std::vector<Abort> aborts;   // copies of the same shard to stop
};

}  // namespace t2::scheduler
