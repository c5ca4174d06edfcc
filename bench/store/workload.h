// The decisions both layouts of the store benchmark write, and the queries both
// answer: generated once from a seed so each layout sees identical rows.
// Times advance with the row index (append order) over 30 days; jobs run a few
// at a time, and a fifth of the decisions are interactive (no job).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

constexpr int kJobs = 100;
constexpr int kTaskCount = 8;
constexpr int kStrategyCount = 4;
constexpr int kExpertCount = 8;
inline const char* kTasks[kTaskCount] = {"math", "code",      "reasoning", "vision",
                                         "summarize", "translate", "chat", "qa"};
inline const char* kStrategies[kStrategyCount] = {"prompt", "classifier", "fewshot", "fixed"};
inline const char* kExperts[kExpertCount] = {"math-v3",    "code-v2",   "reason-v1", "vis-v1",
                                             "summ-v2",    "trans-v1",  "chat-v4",   "qa-v2"};

struct Row {
  int64_t time_us;
  bool placement;
  int job;  // -1: an interactive request, no job
  int task, strategy, rank, depth;
  int expert_count;
  int experts[3];
  double weights[3];
  double confidence, estimated_cost, measured_cost, first_pass_ms, second_pass_ms;
};

struct Workload {
  int64_t start_us = 0, end_us = 0;
  std::vector<Row> rows;
  std::vector<std::string> prompts;  // a pool; row i uses prompts[i % size] plus its index
  std::string prompt(int64_t i) const;
};

// A filter of one benchmark query; -1 / 0 mean "not set".
struct Query {
  int task = -1, strategy = -1, expert = -1, job = -1;
  int64_t since_us = 0, until_us = 0;
};

Workload make_workload(int64_t rows, unsigned seed);
// Cycles through eight shapes: task; strategy in the last day; expert; job;
// task+strategy in the last week; task+expert; a one-hour window; strategy.
std::vector<Query> make_queries(const Workload& work, int per_shape, unsigned seed);

}  // namespace bench
