// Inference shards on a worker: the requests of one placement (free prompts,
// chat conversations, or task examples), adapted as the shard's model says —
// base weights, one expert, or two-pass prompt dispatch — generated greedily in
// batches that share one adapter, scored when they are task examples. Every
// request comes back with its decision (strategy, experts, first-pass output,
// pass times) for rank 0 to record.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>

#include "worker/context.h"

namespace t2::worker {

// Runs a shard message body; returns the result body ("items", "seconds",
// "output_tokens"). `progress(done)` is called after each batch. Returns null
// when the placement was cancelled meanwhile. Throws t2::Error on bad input.
nlohmann::json run_shard(Context& ctx, const nlohmann::json& body,
                         const std::function<void(int64_t)>& progress);

}  // namespace t2::worker
