// Cost-based splitting of inference jobs, with the cost model at its priors:
// per shard 1.33 s (128 decode steps + overhead), per prompt 0.13 s + 2e-4 s/token.
#include "scheduler/splitter.h"

#include <gtest/gtest.h>

namespace t2::scheduler {
namespace {

Job job_of(std::vector<std::uint32_t> tokens) {
  Job job;
  job.id = 1;
  job.task = "t";
  job.strategy = "s";
  job.prompt_tokens = std::move(tokens);
  return job;
}

TEST(Splitter, LongestPromptsFirstInBatchesOfAtMostMaxBatch) {
  CostModel model;
  SplitOptions options;
  options.max_batch = 2;
  const Split split = split_job(job_of({10, 50, 30, 20, 40}), model, 1.0, options);
  EXPECT_EQ(split.order, (std::vector<std::uint32_t>{1, 4, 2, 3, 0}));
  ASSERT_EQ(split.shards.size(), 3u);
  EXPECT_EQ(split.shards[0].begin, 0u);
  EXPECT_EQ(split.shards[0].end, 2u);
  EXPECT_EQ(split.shards[0].prompt_tokens, 90u);
  EXPECT_EQ(split.shards[1].prompt_tokens, 50u);
  EXPECT_EQ(split.shards[2].begin, 4u);
  EXPECT_EQ(split.shards[2].end, 5u);
  EXPECT_NEAR(split.shards[2].estimate, 1.33 + 0.13 + 10 * 2e-4, 1e-9);
}

TEST(Splitter, AJobAloneStaysInFullBatches) {
  // One rank to spread over: the target is the whole job, so max_batch cuts.
  CostModel model;
  const Split split = split_job(job_of(std::vector<std::uint32_t>(20, 100)), model, 1.0);
  ASSERT_EQ(split.shards.size(), 2u);
  EXPECT_EQ(split.shards[0].end - split.shards[0].begin, 16u);
  EXPECT_EQ(split.shards[1].end - split.shards[1].begin, 4u);
}

TEST(Splitter, ManyRanksSpreadTheJobButFixedCostStaysUnderHalf) {
  // Target = max(2 s, 1.33 / 0.5) = 2.66 s: 1.33 + 8 * 0.15 = 2.53 fits, 9 does not.
  CostModel model;
  const Split split = split_job(job_of(std::vector<std::uint32_t>(20, 100)), model, 100.0);
  ASSERT_EQ(split.shards.size(), 3u);
  EXPECT_EQ(split.shards[0].end - split.shards[0].begin, 8u);
  EXPECT_EQ(split.shards[1].end - split.shards[1].begin, 8u);
  EXPECT_EQ(split.shards[2].end - split.shards[2].begin, 4u);
}

TEST(Splitter, EveryPromptExactlyOnce) {
  CostModel model;
  std::vector<std::uint32_t> tokens;
  for (std::uint32_t i = 0; i < 97; ++i) tokens.push_back(1 + (i * 37) % 500);
  const Split split = split_job(job_of(tokens), model, 7.0);
  std::vector<int> seen(tokens.size(), 0);
  std::uint32_t expected_begin = 0;
  for (const ShardRange& s : split.shards) {
    EXPECT_EQ(s.begin, expected_begin);
    EXPECT_GT(s.end, s.begin);
    EXPECT_LE(s.end - s.begin, 16u);
    for (std::uint32_t k = s.begin; k < s.end; ++k) ++seen[split.order[k]];
    expected_begin = s.end;
  }
  EXPECT_EQ(expected_begin, tokens.size());
  for (int count : seen) EXPECT_EQ(count, 1);
}

}  // namespace
}  // namespace t2::scheduler
