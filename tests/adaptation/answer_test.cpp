// Answer extraction (docs/method.md §6) on hand-written completions: one table
// per answer kind, each row a completion and the answer it should yield.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "adaptation/answer.h"
#include "t2/error.h"

namespace t2::adaptation {
namespace {

struct Case {
  std::string text;
  std::optional<std::string> expected;
};

TEST(Answer, LastNumber) {
  const std::vector<Case> cases = {
      {"48 / 2 = 24, so 48 + 24 = 72. The answer is 72.", "72"},
      {"She earned $1,234.50 in total", "1234.50"},
      {"The answer is 1,000,000", "1000000"},
      {"It dropped to -5 degrees", "-5"},
      {"5-3 = 2 apples", "2"},
      {"10 - 3 = 7", "7"},
      {"Counting 1, 2, 3", "3"},              // ", 2" is no thousands group
      {"pi is about 3.14.", "3.14"},
      {"The answer is 18.", "18"},
      {"Step 2: 6 x 3 = 18\nThe answer is 18 dollars", "18"},
      {"no digits here", std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(extract_last_number(c.text), c.expected) << c.text;
}

TEST(Answer, Gsm8kReference) {
  EXPECT_EQ(gsm8k_reference("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72"), "72");
  EXPECT_EQ(gsm8k_reference("... #### 1,250"), "1250");
  EXPECT_EQ(gsm8k_reference("#### -3"), "-3");
  EXPECT_EQ(gsm8k_reference("the end is 5"), std::nullopt);
}

TEST(Answer, NumbersCompareNumerically) {
  EXPECT_TRUE(numbers_equal("72", "72.0"));
  EXPECT_TRUE(numbers_equal("1250", "1250.00"));
  EXPECT_TRUE(numbers_equal("-3", "-3"));
  EXPECT_FALSE(numbers_equal("72", "73"));
  EXPECT_FALSE(numbers_equal("", "1"));
  EXPECT_FALSE(numbers_equal("abc", "1"));
}

TEST(Answer, ChoiceLettersAndDigits) {
  const std::vector<std::string> abcd = {"A", "B", "C", "D"};
  const std::vector<Case> cases = {
      {"The answer is (B).", "B"},
      {"I think the answer is C because plants need light.", "C"},
      {"The correct answer is option D", "D"},
      {"A is wrong. The answer is (C). Answer: A", "C"},   // "answer is" wins
      {"Answer: D", "D"},
      {"Reasoning... Answer: B\nAnswer: C", "C"},           // the last "Answer:"
      {"B", "B"},
      {"(C)", "C"},
      {"B. turn off all equipment", "B"},
      {"**D**", "D"},
      {"Plants need light, so C.", "C"},                    // last lone capital
      {"It is C, not D.", "D"},                             // the method's rule: the last
      {"Because of Anything Else", std::nullopt},           // capitals inside words
      {"I do not know", std::nullopt},                      // "I" is not an option
      {"", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(extract_choice(c.text, abcd), c.expected) << c.text;

  const std::vector<std::string> digits = {"1", "2", "3", "4"};
  EXPECT_EQ(extract_choice("2. less water", digits), "2");
  EXPECT_EQ(extract_choice("The answer is 3", digits), "3");
  EXPECT_EQ(extract_choice("Answer: 4", digits), "4");
  EXPECT_EQ(extract_choice("12 apples", digits), std::nullopt);

  const std::vector<std::string> five = {"A", "B", "C", "D", "E"};
  EXPECT_EQ(extract_choice("The answer is E", five), "E");
  EXPECT_EQ(extract_choice("The answer is E", abcd), std::nullopt);
}

TEST(Answer, CanonicalLabels) {
  EXPECT_EQ(canonical_label("Yes"), "yes");
  EXPECT_EQ(canonical_label("true"), "yes");
  EXPECT_EQ(canonical_label("entailment"), "yes");
  EXPECT_EQ(canonical_label("not_entailment"), "no");
  EXPECT_EQ(canonical_label("False."), "no");
  EXPECT_EQ(canonical_label(" Positive! "), "positive");
  EXPECT_EQ(canonical_label("NEGATIVE"), "negative");
  EXPECT_EQ(canonical_label("  Hello,   World "), "hello world");
}

TEST(Answer, ExactLabels) {
  const std::vector<std::string> yes_no = {"yes", "no"};
  const std::vector<Case> yn = {
      {"Yes", "yes"},
      {"No.", "no"},
      {"True, the passage says so.", "yes"},
      {"false", "no"},
      {"No, the hypothesis is not entailed.", "no"},
      {"The hypothesis is not entailed by the premise.", "no"},
      {"The premise entails the hypothesis.", "yes"},
      {"Based on the passage, the answer is no.", "no"},
      {"Yes and no... Answer: no", "no"},
      {"I cannot tell", std::nullopt},
  };
  for (const auto& c : yn) EXPECT_EQ(extract_label(c.text, yes_no), c.expected) << c.text;

  const std::vector<std::string> sentiment = {"positive", "negative"};
  const std::vector<Case> pn = {
      {"Positive", "positive"},
      {"The sentiment of this review is negative.", "negative"},
      {"negative", "negative"},
      {"Yes", std::nullopt},  // yes/no are not labels of this task
  };
  for (const auto& c : pn) EXPECT_EQ(extract_label(c.text, sentiment), c.expected) << c.text;
}

TEST(Answer, CodeBlocks) {
  EXPECT_EQ(extract_code("Here:\n```python\ndef f():\n    return 1\n```\nDone."),
            "def f():\n    return 1\n");
  EXPECT_EQ(extract_code("```\nx = 1\n```"), "x = 1\n");
  EXPECT_EQ(extract_code("```python\ndef g(): pass\n"), "def g(): pass\n");  // unterminated
  EXPECT_EQ(extract_code("def h(): return 2"), "def h(): return 2");
  EXPECT_EQ(extract_code("```python\na = 1\n```\n```python\nb = 2\n```"), "a = 1\n");
}

TEST(Answer, KindNames) {
  for (auto kind :
       {AnswerKind::kNumeric, AnswerKind::kChoice, AnswerKind::kExact, AnswerKind::kCode})
    EXPECT_EQ(parse_answer_kind(answer_kind_name(kind)), kind);
  EXPECT_THROW(parse_answer_kind("regex"), Error);
}

}  // namespace
}  // namespace t2::adaptation
