// evaluate() on the real model: 16 COPA validation examples, batched and greedy.
// Small models are near chance here; the test checks the bookkeeping (counts,
// interval, per-example results), not the accuracy.
#include <gtest/gtest.h>

#include <algorithm>

#include "adaptation/evaluate.h"
#include "backbone/expert.h"
#include "backbone/model.h"
#include "backbone/svf.h"
#include "backbone/svf_hook.h"

namespace t2::adaptation {
namespace {

const backbone::Model& model() {
  static const auto m = backbone::Model::load(T2_MODEL_PATH);
  return *m;
}

const Task& copa() {
  static const Task t = Task::load("copa", {T2_SOURCE_DIR "/configs/tasks", T2_DATA_DIR});
  return t;
}

TEST(EvaluateModel, SixteenExamples) {
  const Task& task = copa();
  auto examples = task.examples(Split::kValidation);
  examples.resize(16);

  EvalOptions options;
  options.batch_size = 8;  // two batches
  const EvalResult r = evaluate(model(), task, examples, options);

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

// An expert with uniform z (p = 0, z = 0.5 everywhere) gives back W after the
// rescale, so evaluating through the SVF hook answers as the base model does.
TEST(EvaluateModel, UniformExpertAnswersAsTheBase) {
  const Task& task = copa();
  auto examples = task.examples(Split::kValidation);
  examples.resize(4);
  auto svf =
      backbone::Svf::open(model(), backbone::MatrixSet::kMlp, backbone::default_cache_dir());
  backbone::Expert expert = backbone::expert_init(*svf, "uniform", "copa", 0);
  std::fill(expert.p.begin(), expert.p.end(), 0.0f);
  backbone::SvfHook hook(model(), svf);
  hook.set_adapters(std::vector<std::shared_ptr<const backbone::Adapter>>(
      4, backbone::Adapter::from_expert(*svf, expert)));

  EvalOptions options;
  options.batch_size = 4;
  const EvalResult base = evaluate(model(), task, examples, options);
  options.hook = &hook;
  const EvalResult adapted = evaluate(model(), task, examples, options);

  const auto& st = hook.stats();
  EXPECT_GT(st.materialized_rows + st.factored_rows, 0) << "the expert never ran";
  ASSERT_EQ(adapted.n, 4);
  EXPECT_EQ(adapted.correct, base.correct);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(adapted.examples[i].extracted, base.examples[i].extracted)
        << base.examples[i].completion << " | " << adapted.examples[i].completion;
  }
}

}  // namespace
}  // namespace t2::adaptation
