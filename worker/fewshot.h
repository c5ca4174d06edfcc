// Few-shot mixing on a worker (docs/method.md §3): the cross-entropy method
// searches expert weights alpha in [0, 1]^K on a handful of labelled examples,
// fitness = mean per-token log-likelihood of their reference answers
// (adaptation::ShotScorer). Runs as one shard: its items are the shots.
#pragma once

#include <nlohmann/json.hpp>

#include "worker/context.h"

namespace t2::worker {

// Result body: {"placement", "fewshot": {"alpha": {name: weight}, "fitness", ...}}.
nlohmann::json run_fewshot(Context& ctx, const nlohmann::json& body);

}  // namespace t2::worker
