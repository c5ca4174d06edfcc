// Job specs: each type's fields checked and normalized; items expanded; any
// wrong type, range or unknown field refused with the field's name.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "coordinator/job_spec.h"
#include "t2/error.h"

namespace t2::coordinator {
namespace {

using nlohmann::json;

class JobSpec : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("t2-spec-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_ / "tasks");
    std::filesystem::create_directories(dir_ / "data" / "sums");
    std::ofstream(dir_ / "tasks" / "sums.toml") << R"(name = "sums"
category = "math"
description = "sums"
format = "gsm8k"
answer = "numeric"
max_new_tokens = 7
[data]
train = "sums/train.jsonl"
split = "even_odd"
[prompt]
user = "{question}"
)";
    std::ofstream lines(dir_ / "data" / "sums" / "train.jsonl");
    for (int i = 0; i < 10; ++i)
      lines << json{{"question", "1+" + std::to_string(i)},
                    {"answer", "#### " + std::to_string(i + 1)}}.dump() << "\n";
    lines.close();
    catalog_ = std::make_unique<TaskCatalog>(
        adaptation::TaskPaths{(dir_ / "tasks").string(), (dir_ / "data").string()},
        std::vector<std::string>{"sums"});
    ctx_.tasks = catalog_.get();
    ctx_.expert_exists = [](const std::string& n) { return n == "known"; };
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  PreparedJob prepare(store::JobType type, const json& spec) {
    return prepare_job(type, spec, ctx_);
  }

  std::filesystem::path dir_;
  std::unique_ptr<TaskCatalog> catalog_;
  SpecContext ctx_;
};

TEST_F(JobSpec, GenerateFillsDefaultsAndOneItemPerPrompt) {
  const auto job = prepare(store::JobType::generate, {{"prompts", {"a", "bbbbbbbb"}}});
  ASSERT_EQ(job.items.size(), 2u);
  EXPECT_EQ(job.items[1].prompt, "bbbbbbbb");
  EXPECT_EQ(job.items[1].est_tokens, 2u);
  EXPECT_EQ(job.model, "base");
  EXPECT_EQ(job.spec["max_tokens"], 128);
  EXPECT_EQ(job.spec["temperature"], 0.0);
  // The normalized spec prepares to the same job again (what resume does).
  const auto again = prepare(store::JobType::generate, job.spec);
  EXPECT_EQ(again.spec, job.spec);
}

TEST_F(JobSpec, EvaluateExpandsExamplesOfTheSplit) {
  const auto job = prepare(store::JobType::evaluate,
                           {{"task", "sums"}, {"split", "validation"}, {"limit", 3},
                            {"model", "known"}});
  ASSERT_EQ(job.items.size(), 3u);  // odd indices of 10 lines: 5 available
  EXPECT_EQ(job.items[2].example, 2);
  EXPECT_EQ(job.items[2].task, "sums");
  EXPECT_EQ(job.label, "sums");
  EXPECT_EQ(strategy_of(job.model), "expert");
  EXPECT_EQ(prepare(store::JobType::evaluate, {{"task", "sums"}, {"limit", 99}}).items.size(), 5u);
}

TEST_F(JobSpec, TrainAndFewshotCheckTheirExperts) {
  const auto t = prepare(store::JobType::train, {{"task", "sums"}, {"steps", 3}});
  EXPECT_EQ(t.train.expert, "sums");
  EXPECT_EQ(t.train.steps, 3u);
  EXPECT_EQ(t.max_tokens, 7);  // the task's budget
  EXPECT_THROW(prepare(store::JobType::train, {{"task", "sums"}, {"expert", "known"}}), Error);
  EXPECT_THROW(prepare(store::JobType::train, {{"task", "sums"}, {"samples_per_prompt", 4},
                                               {"temperature", 0.0}}), Error);
  const auto f = prepare(store::JobType::fewshot, {{"task", "sums"}, {"experts", {"known"}},
                                                   {"shots", 3}});
  EXPECT_EQ(f.items.size(), 3u);
  EXPECT_THROW(prepare(store::JobType::fewshot, {{"task", "sums"}, {"experts", {"ghost"}}}),
               Error);
}

TEST_F(JobSpec, RefusesBadFieldsNamingThem) {
  auto refused = [&](store::JobType type, const json& spec, const std::string& field) {
    try {
      prepare(type, spec);
      ADD_FAILURE() << "accepted " << spec.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  using T = store::JobType;
  refused(T::generate, json::array(), "spec");
  refused(T::generate, json::object(), "prompts");
  refused(T::generate, {{"prompts", "one"}}, "prompts");
  refused(T::generate, {{"prompts", {1}}}, "prompts[0]");
  refused(T::generate, {{"prompts", json::array()}}, "prompts");
  refused(T::generate, {{"prompts", {"a"}}, {"max_tokens", 0}}, "max_tokens");
  refused(T::generate, {{"prompts", {"a"}}, {"max_tokens", 1.5}}, "max_tokens");
  refused(T::generate, {{"prompts", {"a"}}, {"temperature", "hot"}}, "temperature");
  refused(T::generate, {{"prompts", {"a"}}, {"model", "ghost"}}, "ghost");
  refused(T::generate, {{"prompts", {"a"}}, {"extra", 1}}, "extra");
  refused(T::evaluate, {{"task", "nope"}}, "nope");
  refused(T::evaluate, {{"task", "sums"}, {"tasks", {"sums"}}}, "task");
  refused(T::evaluate, {{"task", "sums"}, {"split", "dev"}}, "split");
  refused(T::train, {{"steps", 3}}, "task");
  refused(T::train, {{"task", "sums"}, {"steps", -1}}, "steps");
  refused(T::fewshot, {{"task", "sums"}, {"experts", {"known"}}, {"elites", 9},
                       {"population", 4}}, "elites");
}

}  // namespace
}  // namespace t2::coordinator
