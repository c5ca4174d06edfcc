// Answers from a closed set, scored rather than generated: after each prompt,
// the log-likelihood of every candidate completion. Pass 1 of dispatch picks its
// category this way, the dispatch task evaluates with it, and the trainer's
// policy on such a task is the softmax over the candidates (docs/method.md §3).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backbone/forward.h"
#include "backbone/model.h"

namespace t2::adaptation {

// out[i][c] = sum over completion c's tokens of log p(token | prompt i, earlier
// tokens). Every prompt runs once (one batch); each candidate then runs over all
// caches, which go back to the prompt after it. `hook` (may be null) must adapt
// sequence i as prompt i. Throws t2::Error when a prompt with the longest
// candidate does not fit the context, or a candidate is empty.
std::vector<std::vector<double>> completion_logprobs(
    const backbone::Model& model, backbone::LinearHook* hook,
    std::span<const std::vector<int32_t>> prompts,
    std::span<const std::vector<int32_t>> completions);

// softmax(v), in double.
std::vector<double> softmax(std::span<const double> v);

}  // namespace t2::adaptation
