// Deterministic benchmark rows: dispatch mostly picks the task's own expert,
// sometimes a mixture of up to three; prompts are 100-600 characters.
#include "workload.h"

#include <random>

namespace bench {

std::string Workload::prompt(int64_t i) const {
  return prompts[static_cast<size_t>(i) % prompts.size()] + " #" + std::to_string(i);
}

Workload make_workload(int64_t rows, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Workload w;
  w.start_us = 1'717'200'000'000'000;  // 2024-06-01
  w.end_us = w.start_us + 30LL * 86'400'000'000;
  int64_t step = (w.end_us - w.start_us) / std::max<int64_t>(rows, 1);
  w.rows.resize(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) {
    Row& r = w.rows[i];
    r.time_us = w.start_us + i * step + static_cast<int64_t>(rng() % std::max<int64_t>(step, 1));
    r.placement = rng() % 10 == 0;
    // Jobs run a few at a time, one after another over the 30 days (job j is
    // active around row j * rows / kJobs, with up to three neighbours), and one
    // decision in five is an interactive request that belongs to no job.
    int64_t slot = i * kJobs / std::max<int64_t>(rows, 1);
    r.job = rng() % 5 == 0 ? -1
                           : static_cast<int>(std::min<int64_t>(kJobs - 1, slot + rng() % 4));
    r.task = static_cast<int>(rng() % kTaskCount);
    r.strategy = static_cast<int>(rng() % kStrategyCount);
    r.rank = static_cast<int>(rng() % 8);
    r.depth = 16 + static_cast<int>(rng() % 15);
    r.expert_count = 1 + static_cast<int>(rng() % 3);
    r.experts[0] = unit(rng) < 0.7 ? r.task : static_cast<int>(rng() % kExpertCount);
    for (int e = 1; e < r.expert_count; ++e) {
      int pick;
      bool repeat;
      do {  // distinct experts within one mixture
        pick = static_cast<int>(rng() % kExpertCount);
        repeat = false;
        for (int k = 0; k < e; ++k) repeat |= r.experts[k] == pick;
      } while (repeat);
      r.experts[e] = pick;
    }
    double sum = 0;
    for (int e = 0; e < r.expert_count; ++e) sum += r.weights[e] = 0.1 + unit(rng);
    for (int e = 0; e < r.expert_count; ++e) r.weights[e] /= sum;
    r.confidence = unit(rng);
    r.estimated_cost = 10 + 90 * unit(rng);
    r.measured_cost = r.estimated_cost * (0.8 + 0.4 * unit(rng));
    r.first_pass_ms = 5 + 20 * unit(rng);
    r.second_pass_ms = 40 + 400 * unit(rng);
  }
  const char* words[] = {"solve", "the", "equation", "write", "a", "function", "that",
                         "explain", "why", "summarize", "this", "text", "translate", "into"};
  for (int p = 0; p < 1000; ++p) {
    std::string text;
    size_t length = 100 + rng() % 500;
    while (text.size() < length) text += std::string(words[rng() % 14]) + ' ';
    w.prompts.push_back(text);
  }
  return w;
}

std::vector<Query> make_queries(const Workload& w, int per_shape, unsigned seed) {
  std::mt19937_64 rng(seed);
  const int64_t day = 86'400'000'000, hour = 3'600'000'000;
  std::vector<Query> out;
  for (int i = 0; i < per_shape * 8; ++i) {
    Query q;
    int64_t span = w.end_us - w.start_us;
    switch (i % 8) {
      case 0: q.task = static_cast<int>(rng() % kTaskCount); break;
      case 1:
        q.strategy = static_cast<int>(rng() % kStrategyCount);
        q.since_us = w.end_us - day;
        break;
      case 2: q.expert = static_cast<int>(rng() % kExpertCount); break;
      case 3: q.job = static_cast<int>(rng() % kJobs); break;
      case 4:
        q.task = static_cast<int>(rng() % kTaskCount);
        q.strategy = static_cast<int>(rng() % kStrategyCount);
        q.since_us = w.end_us - 7 * day;
        break;
      case 5:
        q.task = static_cast<int>(rng() % kTaskCount);
        q.expert = static_cast<int>(rng() % kExpertCount);
        break;
      case 6:
        q.since_us = w.start_us + static_cast<int64_t>(rng() % static_cast<uint64_t>(span - hour));
        q.until_us = q.since_us + hour;
        break;
      case 7: q.strategy = static_cast<int>(rng() % kStrategyCount); break;
    }
    out.push_back(q);
  }
  return out;
}

}  // namespace bench
