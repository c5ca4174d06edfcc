// evaluate() on the real model: 16 COPA validation examples, batched and greedy.
// Small models are near chance here; the test checks the bookkeeping (counts,
// interval, per-example results), not the accuracy.
#include <gtest/gtest.h>

#include "adaptation/evaluate.h"
#include "backbone/model.h"

namespace t2::adaptation {
namespace {

TEST(EvaluateModel, SixteenExamples) {
  const auto model = backbone::Model::load(T2_MODEL_PATH);
  const Task task = Task::load("copa", {T2_SOURCE_DIR "/configs/tasks", T2_DATA_DIR});
  auto examples = task.examples(Split::kValidation);
  examples.resize(16);

  EvalOptions options;
  options.batch_size = 8;  // two batches
  const EvalResult r = evaluate(*model, task, examples, options);

  ASSERT_EQ(r.n, 16);
  ASSERT_EQ(r.examples.size(), 16u);
  EXPECT_GE(r.accuracy, 0.0);
  EXPECT_LE(r.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(r.accuracy, double(r.correct) / 16.0);
  EXPECT_LE(r.ci95.low, r.accuracy);
  EXPECT_GE(r.ci95.high, r.accuracy);

  int64_t correct = 0, unanswered = 0, truncated = 0, tokens = 0;
  for (size_t i = 0; i < r.examples.size(); ++i) {
    const auto& e = r.examples[i];
    EXPECT_EQ(e.id, examples[i].id);  // results in the order given
    EXPECT_EQ(e.reference, examples[i].reference);
    EXPECT_EQ(e.reward, e.correct ? 1.0f : -1.0f);
    EXPECT_GT(e.prompt_tokens, 0);
    EXPECT_LE(e.generated_tokens, task.max_new_tokens());
    correct += e.correct;
    unanswered += e.extracted.empty();
    truncated += e.finish_reason == "length";
    tokens += e.generated_tokens;
    std::printf("%-10s ref %s got %-2s %s  %s\n", e.id.c_str(), e.reference.c_str(),
                e.extracted.c_str(), e.correct ? "ok   " : "wrong",
                e.completion.substr(0, 60).c_str());
  }
  EXPECT_EQ(correct, r.correct);
  EXPECT_EQ(unanswered, r.unanswered);
  EXPECT_EQ(truncated, r.truncated);
  EXPECT_EQ(tokens, r.generated_tokens);
  std::printf("copa validation, first 16: %lld/16 correct (%.1f %%), 95 %% CI %.1f-%.1f %%\n",
              (long long)r.correct, 100.0 * r.accuracy, 100.0 * r.ci95.low, 100.0 * r.ci95.high);

  // A correct hand-fed completion scores 1.
  for (const auto& e : examples) {
    const Score s = task.score(e, "The answer is " + e.reference + ".");
    EXPECT_TRUE(s.correct);
    EXPECT_EQ(s.reward, 1.0f);
  }
}

}  // namespace
}  // namespace t2::adaptation
