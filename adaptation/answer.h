// Answer extraction and checking (docs/method.md §6): what a completion answers,
// for numeric, multiple-choice, exact-label and code tasks. Pure functions of
// the text; running code lives in sandbox.h.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace t2::adaptation {

// kBoxed: the first \boxed{...} word is the label (dispatch classification).
enum class AnswerKind { kNumeric, kChoice, kExact, kCode, kBoxed };
AnswerKind parse_answer_kind(std::string_view name);  // numeric|choice|exact|code|boxed; throws
const char* answer_kind_name(AnswerKind kind);

// --- numeric ---------------------------------------------------------------

// The last number in the text, commas removed ("1,234.50" -> "1234.50"), with
// its sign when a '-' stands right before it and is not a binary minus.
std::optional<std::string> extract_last_number(std::string_view text);
// GSM8K's reference: the number after "####" in a worked solution.
std::optional<std::string> gsm8k_reference(std::string_view solution);
// Numeric equality (relative 1e-6); false when either side is not a number.
bool numbers_equal(std::string_view a, std::string_view b);

// --- multiple choice -------------------------------------------------------

// The chosen label among `labels` (as given: A-D, 1-4, A-E), in this order:
// the last "answer is (X)"; else the last "Answer: X"; else a label opening the
// completion ("B", "(B)", "B. text"); else the last lone label (no letter or
// digit beside it). nullopt when none is found.
std::optional<std::string> extract_choice(std::string_view completion,
                                          std::span<const std::string> labels);

// --- exact labels ----------------------------------------------------------

// The canonical form of a label word: yes/true/correct/entailment -> "yes",
// no/false/incorrect/not_entailment -> "no", positive/negative as is; other
// text lower-cased with punctuation and extra spaces removed.
std::string canonical_label(std::string_view text);
// The answer among canonical `labels` (e.g. {"yes", "no"}): after "answer is"
// or "Answer:" when present, else the first label word of the completion
// (synonyms count, "not entailed" is "no").
std::optional<std::string> extract_label(std::string_view completion,
                                         std::span<const std::string> labels);

// --- boxed labels ----------------------------------------------------------

// The first \boxed{...} content in `text`, trimmed and lower-cased; "" when
// none. The Dispatcher's pass 1 and the dispatch task's reward both read it.
std::string parse_boxed(std::string_view text);

// --- code ------------------------------------------------------------------

// The program in a completion: the first fenced block (```python ... ```), or
// the whole completion when it has no fence.
std::string extract_code(std::string_view completion);

}  // namespace t2::adaptation
