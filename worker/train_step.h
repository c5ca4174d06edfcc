// One rank's slice of a data-parallel training step: rollouts of its prompts
// with the expert the message carries (or a fresh one at step 0), the gradient
// of their loss (adaptation::Trainer), the all-reduce of gradient and counts
// over the step's group, then the same clipped Adam step every member takes.
// The group's leader returns the new state (p, m, v) to rank 0.
#pragma once

#include <nlohmann/json.hpp>

#include <vector>

#include "worker/context.h"

namespace t2::worker {

struct StepOutcome {
  nlohmann::json body;     // the result message body
  std::vector<float> state;  // p, m, v after the step (every member computes it)
};

// `state`: 3 x total_rank values, or empty at the first step. Throws t2::Error
// when the all-reduce was aborted (a group member was lost).
StepOutcome run_train_step(Context& ctx, const nlohmann::json& body,
                           const std::vector<float>& state);

}  // namespace t2::worker
