// Task configs: all eight in configs/tasks load with their split sizes, prompts
// render, hand-fed completions score as they should for every answer kind, and
// bad configs fail with the key named.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "adaptation/task.h"
#include "t2/error.h"

namespace t2::adaptation {
namespace {

namespace fs = std::filesystem;

const TaskPaths kPaths{T2_SOURCE_DIR "/configs/tasks", T2_DATA_DIR};

struct TaskCase {
  const char* name;
  const char* category;
  AnswerKind kind;
  size_t train, validation, test;  // test 0: no test split
};

class TaskConfig : public testing::TestWithParam<TaskCase> {};

TEST_P(TaskConfig, LoadsWithItsSplits) {
  const TaskCase& c = GetParam();
  const Task task = Task::load(c.name, kPaths);
  EXPECT_EQ(task.name(), c.name);
  EXPECT_EQ(task.category(), c.category);
  EXPECT_FALSE(task.description().empty());
  EXPECT_EQ(task.answer_kind(), c.kind);
  EXPECT_EQ(task.reward_correct(), 1.0f);
  EXPECT_EQ(task.reward_wrong(), -1.0f);

  const auto train = task.examples(Split::kTrain);
  const auto validation = task.examples(Split::kValidation);
  EXPECT_EQ(train.size(), c.train);
  EXPECT_EQ(validation.size(), c.validation);
  for (const auto& e : train) ASSERT_EQ(e.index % 2, 0) << e.id;
  for (const auto& e : validation) ASSERT_EQ(e.index % 2, 1) << e.id;
  EXPECT_EQ(task.has_split(Split::kTest), c.test > 0);
  if (c.test > 0) {
    EXPECT_EQ(task.examples(Split::kTest).size(), c.test);
  } else {
    EXPECT_THROW(task.examples(Split::kTest), Error);
  }

  // Every prompt renders into a user message holding the record's text.
  const Example& e = validation.front();
  ASSERT_FALSE(e.messages.empty());
  EXPECT_EQ(e.messages.back().role, "user");
  EXPECT_GT(e.messages.back().content.size(), 20u);
  EXPECT_FALSE(e.reference.empty());
}

INSTANTIATE_TEST_SUITE_P(
    AllTasks, TaskConfig,
    testing::Values(TaskCase{"gsm8k", "math", AnswerKind::kNumeric, 3737, 3736, 0},
                    TaskCase{"arc_easy", "reasoning", AnswerKind::kChoice, 594, 594, 570},
                    TaskCase{"arc_challenge", "reasoning", AnswerKind::kChoice, 150, 149, 0},
                    TaskCase{"mbpp", "code", AnswerKind::kCode, 187, 187, 90},
                    TaskCase{"sst2", "sentiment", AnswerKind::kExact, 218, 218, 0},
                    TaskCase{"boolq", "reading", AnswerKind::kExact, 818, 817, 0},
                    TaskCase{"copa", "reasoning", AnswerKind::kChoice, 25, 25, 0},
                    TaskCase{"rte", "reading", AnswerKind::kExact, 70, 69, 0}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Task, ListsAllEight) {
  const auto names = list_tasks(kPaths.tasks_dir);
  const std::vector<std::string> expected = {"arc_challenge", "arc_easy", "boolq", "copa",
                                             "gsm8k",         "mbpp",     "rte",   "sst2"};
  EXPECT_EQ(names, expected);
}

TEST(Task, UnknownTaskListsKnownOnes) {
  try {
    Task::load("squad", kPaths);
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown task 'squad'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("arc_easy"), std::string::npos) << msg;
  }
}

// Hand-fed completions per answer kind: the reference answer counts, others do not.
TEST(Task, ScoresHandFedCompletions) {
  const Task gsm8k = Task::load("gsm8k", kPaths);
  const Example g = gsm8k.examples(Split::kTrain).front();  // Natalia: 72
  EXPECT_TRUE(gsm8k.score(g, "48 + 24 = 72 clips. The answer is 72.").correct);
  const Score wrong = gsm8k.score(g, "The answer is 1,072.");
  EXPECT_FALSE(wrong.correct);
  EXPECT_EQ(wrong.extracted, "1072");
  EXPECT_EQ(wrong.reward, -1.0f);

  const Task arc = Task::load("arc_easy", kPaths);
  const Example a = arc.examples(Split::kValidation).front();
  const Score right = arc.score(a, "The answer is (" + a.reference + ").");
  EXPECT_TRUE(right.correct);
  EXPECT_EQ(right.reward, 1.0f);
  const std::string other = a.reference == "A" ? "B" : "A";
  EXPECT_FALSE(arc.score(a, "Answer: " + other).correct);

  const Task sst2 = Task::load("sst2", kPaths);
  const Example s = sst2.examples(Split::kTrain).front();  // "a charming ... journey": positive
  EXPECT_EQ(s.reference, "positive");
  EXPECT_TRUE(sst2.score(s, "Positive.").correct);
  EXPECT_FALSE(sst2.score(s, "The sentiment is negative.").correct);
  EXPECT_FALSE(sst2.score(s, "I am not sure.").correct);

  const Task rte = Task::load("rte", kPaths);
  const Example r = rte.examples(Split::kTrain).front();  // not_entailment
  EXPECT_TRUE(rte.score(r, "No, it does not.").correct);
  EXPECT_FALSE(rte.score(r, "Yes").correct);

  const Task copa = Task::load("copa", kPaths);
  const Example c = copa.examples(Split::kTrain).front();  // faucet: B
  EXPECT_TRUE(copa.score(c, "B").correct);
  EXPECT_FALSE(copa.score(c, "A. The toilet filled with water.").correct);
}

TEST(Task, ScoresCodeInTheSandbox) {
  const Task mbpp = Task::load("mbpp", kPaths);
  const auto examples = mbpp.examples(Split::kTrain);
  // The references themselves pass (first few, Windows line endings and all).
  for (size_t i = 0; i < 3; ++i) {
    const Score s = mbpp.score(examples[i], "```python\n" + examples[i].reference + "\n```");
    EXPECT_TRUE(s.correct) << examples[i].id << ": " << s.extracted;
    EXPECT_EQ(s.extracted, "passed");
  }
  const Score wrong = mbpp.score(examples[0], "```python\ndef nothing():\n    pass\n```");
  EXPECT_FALSE(wrong.correct);
  EXPECT_NE(wrong.extracted.find("failed"), std::string::npos) << wrong.extracted;
  const Score loop = mbpp.score(examples[0], "while True:\n    pass\n");
  EXPECT_EQ(loop.extracted, "timeout");
}

TEST(Task, TemplateRendering) {
  const std::map<std::string, std::string> fields{{"question", "2+2?"}, {"x", "{raw}"}};
  EXPECT_EQ(render_template("Q: {question} {{literal}}", fields), "Q: 2+2? {literal}");
  EXPECT_EQ(render_template("{x}", fields), "{raw}");  // values are not re-expanded
  EXPECT_THROW(render_template("{nope}", fields), Error);
  EXPECT_THROW(render_template("{question", fields), Error);
}

// Bad configs, one mistake each, and the words the error should contain.
struct BadConfig {
  const char* change;  // replaces the marked line of the good config
  const char* expect;
};

const char* kGood = R"(name = "t"
category = "math"
description = "d"
format = "gsm8k"
answer = "numeric"
#MARK
[data]
train = "gsm8k/train.jsonl"
[prompt]
user = "{question}"
)";

std::string with(const std::string& change) {
  std::string text = kGood;
  text.replace(text.find("#MARK"), 5, change);
  return text;
}

TEST(Task, BadConfigsNameTheProblem) {
  const std::vector<BadConfig> cases = {
      {"answr = \"numeric\"", "unknown key 'answr'"},
      {"format = \"squad\"", "invalid TOML"},  // duplicate key
      {"max_new_tokens = \"many\"", "max_new_tokens' has the wrong type"},
      {"max_new_tokens = 0", "max_new_tokens should be in"},
      {"on_bad_line = \"ignore\"", "expected skip or reject"},
      {"[reward]\ncorect = 1.0", "unknown key 'reward.corect'"},
      {"labels = [1, 2]", "'labels' should be an array of strings"},
      {"[sandbox]\nmemory = 5", "unknown key 'sandbox.memory'"},
  };
  for (const auto& c : cases) {
    try {
      Task::parse(with(c.change), "t.toml", T2_DATA_DIR);
      ADD_FAILURE() << "accepted: " << c.change;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos)
          << c.change << " -> " << e.what();
    }
  }
  auto error_of = [](const std::string& text) -> std::string {
    try {
      Task::parse(text, "t.toml", T2_DATA_DIR);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  std::string no_user = kGood;
  const std::string user_line = "user = \"{question}\"";
  no_user.replace(no_user.find(user_line), user_line.size(), "system = \"s\"");
  EXPECT_NE(error_of(no_user).find("missing key 'prompt.user'"), std::string::npos);
  std::string bad_placeholder = kGood;
  bad_placeholder.replace(bad_placeholder.find("{question}"), 10, "{passage}");
  EXPECT_NE(error_of(bad_placeholder).find("unknown placeholder {passage}"), std::string::npos);
  std::string exact = kGood;
  exact.replace(exact.find("\"numeric\""), 9, "\"exact\"");
  EXPECT_NE(error_of(exact).find("needs labels"), std::string::npos);
  std::string files = with("");
  files.replace(files.find("[prompt]"), 0, "split = \"files\"\n");
  EXPECT_NE(error_of(files).find("needs data.validation"), std::string::npos);
  EXPECT_EQ(error_of(with("")), "");
}

TEST(Task, NameMustMatchItsFile) {
  const fs::path dir = fs::temp_directory_path() / ("t2-tasks-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "other.toml") << with("");
  try {
    Task::load("other", {dir.string(), T2_DATA_DIR});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("named after its file"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// on_bad_line in the config decides between skipping and rejecting.
TEST(Task, OnBadLineFromConfig) {
  const fs::path root = fs::temp_directory_path() / ("t2-data-" + std::to_string(::getpid()));
  fs::create_directories(root / "mini");
  std::ofstream(root / "mini" / "train.jsonl")
      << R"({"question": "a", "answer": "#### 1"})" "\n"
      << R"({"question": "b", "answer": "#### 2"})" "\n"
      << "garbage\n"
      << R"({"question": "d", "answer": "#### 4"})" "\n";
  auto config = [](const char* on_bad) {
    std::string text = with(std::string("on_bad_line = \"") + on_bad + "\"");
    text.replace(text.find("gsm8k/train.jsonl"), 17, "mini/train.jsonl");
    return text;
  };
  const Task skip = Task::parse(config("skip"), "skip.toml", root.string());
  const auto val = skip.examples(Split::kValidation);  // odd line indices 1 and 3 (2 is bad)
  ASSERT_EQ(val.size(), 2u);
  EXPECT_EQ(val[0].reference, "2");
  EXPECT_EQ(val[1].reference, "4");
  EXPECT_EQ(skip.examples(Split::kTrain).size(), 1u);

  const Task reject = Task::parse(config("reject"), "reject.toml", root.string());
  try {
    reject.examples(Split::kTrain);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.jsonl:3:"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

TEST(Task, DataRootFromEnvironment) {
  ::setenv("T2_DATA_DIR", "/somewhere/data", 1);
  EXPECT_EQ(default_data_root(), "/somewhere/data");
  ::unsetenv("T2_DATA_DIR");
  EXPECT_NE(default_data_root().find("shared/data"), std::string::npos);
  const Task t = Task::parse(with(""), "t.toml", "/root/of/data");
  EXPECT_EQ(t.data_path(Split::kTrain), "/root/of/data/gsm8k/train.jsonl");
  EXPECT_EQ(t.split_rule(Split::kValidation), "odd indices of /root/of/data/gsm8k/train.jsonl");
}

}  // namespace
}  // namespace t2::adaptation
