// Names of placement and abort reasons, as written in decision rows.
#include "scheduler/records.h"

namespace t2::scheduler {

std::string_view reason_name(PlacementReason reason) {
  switch (reason) {
    case PlacementReason::kPlanned: return "planned";
    case PlacementReason::kStolen: return "stolen";
    case PlacementReason::kReissued: return "reissued";
    case PlacementReason::kRecovered: return "recovered";
    case PlacementReason::kTrainStep: return "train_step";
  }
  return "?";
}

std::string_view reason_name(AbortReason reason) {
  switch (reason) {
    case AbortReason::kCancelled: return "cancelled";
    case AbortReason::kRankLost: return "rank_lost";
    case AbortReason::kDuplicate: return "duplicate";
    case AbortReason::kStepLost: return "step_lost";
  }
  return "?";
}

}  // namespace t2::scheduler
