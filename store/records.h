// The typed rows of t2's store: jobs and their events, checkpoints, experts,
// adaptation decisions and metrics. These are the only shapes that cross the
// store's API; SQL and column layout stay inside store/.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/time.h"

namespace t2::store {

using JobId = int64_t;
using DecisionId = int64_t;

enum class JobType { train, evaluate, generate, fewshot };
enum class JobState { queued, running, succeeded, failed, cancelled };

std::string_view to_string(JobType type);
std::string_view to_string(JobState state);
JobType job_type_from(std::string_view text);     // throws t2::Error listing valid names
JobState job_state_from(std::string_view text);   // throws t2::Error listing valid names
bool is_terminal(JobState state);

// What a client submits. A submission_id makes the submission idempotent.
struct NewJob {
  JobType type = JobType::generate;
  nlohmann::json spec = nlohmann::json::object();
  int priority = 0;
  std::optional<std::string> submission_id;
};

struct Job {
  JobId id = 0;
  std::optional<std::string> submission_id;
  JobType type = JobType::generate;
  nlohmann::json spec;
  JobState state = JobState::queued;
  int priority = 0;
  Timestamp created{};
  Timestamp updated{};
  std::optional<Timestamp> started;   // first time it ran
  std::optional<Timestamp> finished;  // when it reached a terminal state
  std::string error;                  // empty unless failed
  int attempts = 0;
};

struct SubmitResult {
  Job job;
  bool created = false;  // false: an earlier job with the same submission_id
};

struct JobEvent {
  JobId job = 0;
  int64_t seq = 0;  // 1, 2, ... per job, in commit order
  Timestamp time{};
  std::string kind;
  nlohmann::json payload;
};

// Resumable training state; the store keeps the latest few per job.
struct Checkpoint {
  JobId job = 0;
  int64_t step = 0;
  std::vector<uint8_t> parameters;
  std::vector<uint8_t> optimizer;
  Timestamp created{};
};

// A trained expert: z-vectors for a matrix set of one base model, stored inline
// (vector) or as a file path whose SHA-256 is recorded in checksum.
struct Expert {
  std::string name;
  std::string task;
  std::string base_model_hash;
  std::string matrix_set;
  std::vector<uint8_t> vector;         // empty when file_path is set
  std::optional<std::string> file_path;
  std::optional<std::string> checksum;  // hex SHA-256; required with file_path
  std::optional<double> validation_accuracy;
  std::optional<JobId> source_job;
  Timestamp created{};
  int64_t vector_bytes = 0;  // filled on read; list_experts leaves `vector` empty
};

enum class DecisionKind { request, placement };
std::string_view to_string(DecisionKind kind);
DecisionKind decision_kind_from(std::string_view text);

struct ExpertWeight {
  std::string name;
  double weight = 1.0;
};

// What the coordinator knows when it decides. The store hashes `prompt` and
// keeps only a bounded excerpt of it (none when the store is set to redact).
struct NewDecision {
  DecisionKind kind = DecisionKind::request;
  std::optional<Timestamp> time;  // default: now
  std::optional<JobId> job;
  std::optional<std::string> request_id;
  std::optional<std::string> task;
  std::string strategy;
  nlohmann::json first_pass;  // null when there was no first pass
  std::vector<ExpertWeight> experts;
  std::optional<int> depth;
  std::optional<int> rank;
  std::optional<double> estimated_cost;
  std::optional<double> measured_cost;
  std::optional<double> first_pass_ms;
  std::optional<double> second_pass_ms;
  std::string prompt;
};

// What becomes known after the work ran; unset fields are left as they were.
struct DecisionOutcome {
  std::optional<double> measured_cost;
  std::optional<double> first_pass_ms;
  std::optional<double> second_pass_ms;
  std::optional<int> depth;
};

struct Decision {
  DecisionId id = 0;
  Timestamp time{};
  DecisionKind kind = DecisionKind::request;
  std::optional<JobId> job;
  std::optional<std::string> request_id;
  std::optional<std::string> task;
  std::string strategy;
  nlohmann::json first_pass;
  std::vector<ExpertWeight> experts;
  std::optional<int> depth;
  std::optional<int> rank;
  std::optional<double> estimated_cost;
  std::optional<double> measured_cost;
  std::optional<double> first_pass_ms;
  std::optional<double> second_pass_ms;
  std::string prompt_sha256;                  // hex
  std::optional<std::string> prompt_excerpt;  // absent when redacted
};

struct Metric {
  JobId job = 0;
  std::string key;
  int64_t step = 0;
  double value = 0;
  Timestamp time{};
};

}  // namespace t2::store
