// Names of the store's enums as they appear in SQLite, JSON and on the command
// line. Parsing is strict: an unknown name is an error that lists the valid ones.
#include "store/records.h"

#include <fmt/ranges.h>

#include "t2/error.h"

namespace t2::store {
namespace {

constexpr std::array<std::string_view, 4> kJobTypes = {"train", "evaluate", "generate",
                                                        "fewshot"};
constexpr std::array<std::string_view, 5> kJobStates = {"queued", "running", "succeeded",
                                                         "failed", "cancelled"};
constexpr std::array<std::string_view, 2> kDecisionKinds = {"request", "placement"};

template <typename Enum, size_t N>
Enum from_names(const std::array<std::string_view, N>& names, std::string_view text,
                std::string_view what) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == text) return static_cast<Enum>(i);
  }
  fail("unknown {} '{}'; expected one of: {}", what, text, fmt::join(names, ", "));
}

}  // namespace

std::string_view to_string(JobType type) { return kJobTypes[static_cast<size_t>(type)]; }
std::string_view to_string(JobState state) { return kJobStates[static_cast<size_t>(state)]; }
std::string_view to_string(DecisionKind kind) {
  return kDecisionKinds[static_cast<size_t>(kind)];
}

JobType job_type_from(std::string_view text) {
  return from_names<JobType>(kJobTypes, text, "job type");
}

JobState job_state_from(std::string_view text) {
  return from_names<JobState>(kJobStates, text, "job state");
}

DecisionKind decision_kind_from(std::string_view text) {
  return from_names<DecisionKind>(kDecisionKinds, text, "decision kind");
}

bool is_terminal(JobState state) {
  return state == JobState::succeeded || state == JobState::failed ||
         state == JobState::cancelled;
}

}  // namespace t2::store
