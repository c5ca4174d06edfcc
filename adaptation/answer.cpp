// Answer extraction: hand-written scanners rather than regexes, so that the
// boundary rules ("lone" labels, thousands commas, binary minus) stay explicit.
#include "adaptation/answer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>
#include <vector>

#include "t2/error.h"

namespace t2::adaptation {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
char lower(char c) { return char(std::tolower(static_cast<unsigned char>(c))); }

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

std::optional<double> parse_double(std::string_view s) {
  std::string text(s);
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// The label starting at `pos` with no letter or digit right after it (longest first).
std::optional<std::string> label_at(std::string_view s, size_t pos,
                                    std::span<const std::string> labels) {
  const std::string* best = nullptr;
  for (const auto& label : labels) {
    if (label.empty() || s.substr(pos, label.size()) != label) continue;
    const size_t after = pos + label.size();
    if (after < s.size() && is_alnum(s[after])) continue;
    if (!best || label.size() > best->size()) best = &label;
  }
  if (!best) return std::nullopt;
  return *best;
}

bool lone_before(std::string_view s, size_t pos) { return pos == 0 || !is_alnum(s[pos - 1]); }

// After a cue ("answer is", "answer:"), skip separators and filler words, then
// read a label. Returns the label or nullopt.
std::optional<std::string> label_after_cue(std::string_view s, size_t pos,
                                           std::span<const std::string> labels) {
  auto skip_separators = [&] {
    const std::string_view separators = " \t\n:*([\"'";
    while (pos < s.size() && separators.find(s[pos]) != std::string_view::npos) ++pos;
  };
  skip_separators();
  for (std::string_view filler : {"option", "choice", "letter"}) {
    if (to_lower(s.substr(pos, filler.size())) == filler) {
      pos += filler.size();
      skip_separators();
      break;
    }
  }
  if (pos >= s.size() || !lone_before(s, pos)) return std::nullopt;
  return label_at(s, pos, labels);
}

// The last occurrence of `cue` (lower case) in `s` followed by a label.
std::optional<std::string> last_cued_label(std::string_view s, std::string_view cue,
                                           std::span<const std::string> labels) {
  const std::string low = to_lower(s);
  std::optional<std::string> found;
  for (size_t at = low.find(cue); at != std::string::npos; at = low.find(cue, at + 1)) {
    if (auto label = label_after_cue(s, at + cue.size(), labels)) found = label;
  }
  return found;
}

// Word forms and the canonical label they stand for.
const std::map<std::string, std::string>& synonyms() {
  static const std::map<std::string, std::string> table = {
      {"yes", "yes"},       {"true", "yes"},         {"correct", "yes"},
      {"entailment", "yes"}, {"entailed", "yes"},    {"entails", "yes"},
      {"no", "no"},         {"false", "no"},         {"incorrect", "no"},
      {"not entailment", "no"}, {"not entailed", "no"}, {"not entail", "no"},
      {"not true", "no"},   {"positive", "positive"}, {"negative", "negative"},
  };
  return table;
}

struct Word {
  std::string text;  // lower case
  size_t begin = 0;
};

std::vector<Word> words_of(std::string_view s) {
  std::vector<Word> words;
  for (size_t i = 0; i < s.size();) {
    if (!is_alnum(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && is_alnum(s[j])) ++j;
    words.push_back({to_lower(s.substr(i, j - i)), i});
    i = j;
  }
  return words;
}

// The first label word at or after word `from`, among `allowed` canonical labels.
std::optional<std::string> first_label_word(const std::vector<Word>& words, size_t from,
                                            std::span<const std::string> allowed,
                                            size_t max_words) {
  const auto& table = synonyms();
  auto permitted = [&](const std::string& canon) {
    return std::find(allowed.begin(), allowed.end(), canon) != allowed.end();
  };
  const size_t end = std::min(words.size(), from + max_words);
  for (size_t i = from; i < end; ++i) {
    if (words[i].text == "not" && i + 1 < words.size()) {
      auto it = table.find("not " + words[i + 1].text);
      if (it != table.end() && permitted(it->second)) return it->second;
    }
    auto it = table.find(words[i].text);
    if (it != table.end() && permitted(it->second)) return it->second;
    if (permitted(words[i].text)) return words[i].text;  // labels outside the table
  }
  return std::nullopt;
}

}  // namespace

AnswerKind parse_answer_kind(std::string_view name) {
  if (name == "numeric") return AnswerKind::kNumeric;
  if (name == "choice") return AnswerKind::kChoice;
  if (name == "exact") return AnswerKind::kExact;
  if (name == "code") return AnswerKind::kCode;
  if (name == "boxed") return AnswerKind::kBoxed;
  fail("unknown answer kind '{}'; expected numeric, choice, exact, code or boxed", name);
}

const char* answer_kind_name(AnswerKind kind) {
  switch (kind) {
    case AnswerKind::kNumeric: return "numeric";
    case AnswerKind::kChoice: return "choice";
    case AnswerKind::kExact: return "exact";
    case AnswerKind::kCode: return "code";
    case AnswerKind::kBoxed: return "boxed";
  }
  return "?";
}

std::string parse_boxed(std::string_view text) {
  const auto at = text.find("\\boxed{");
  if (at == std::string_view::npos) return "";
  const size_t begin = at + 7;
  const auto end = text.find('}', begin);
  if (end == std::string_view::npos) return "";
  std::string_view inner = text.substr(begin, end - begin);
  while (!inner.empty() && std::isspace(static_cast<unsigned char>(inner.front())))
    inner.remove_prefix(1);
  while (!inner.empty() && std::isspace(static_cast<unsigned char>(inner.back())))
    inner.remove_suffix(1);
  std::string out(inner);
  for (auto& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::optional<std::string> extract_last_number(std::string_view s) {
  std::optional<std::string> last;
  size_t i = 0;
  while (i < s.size()) {
    if (!is_digit(s[i]) || (i > 0 && (is_digit(s[i - 1]) || s[i - 1] == '.'))) {
      ++i;
      continue;
    }
    const size_t start = i;
    std::string number;
    while (i < s.size() && is_digit(s[i])) number += s[i++];
    // Thousands groups: a comma followed by exactly three digits.
    while (i + 3 < s.size() && s[i] == ',' && is_digit(s[i + 1]) && is_digit(s[i + 2]) &&
           is_digit(s[i + 3]) && (i + 4 >= s.size() || !is_digit(s[i + 4]))) {
      number.append(s.substr(i + 1, 3));
      i += 4;
    }
    if (i + 1 < s.size() && s[i] == '.' && is_digit(s[i + 1])) {
      number += s[i++];
      while (i < s.size() && is_digit(s[i])) number += s[i++];
    }
    // A '-' is a sign unless it follows a letter, digit or closing bracket.
    const bool negative = start > 0 && s[start - 1] == '-' &&
                          (start < 2 || (!is_alnum(s[start - 2]) && s[start - 2] != ')'));
    last = negative ? "-" + number : number;
  }
  return last;
}

std::optional<std::string> gsm8k_reference(std::string_view solution) {
  const size_t at = solution.rfind("####");
  if (at == std::string_view::npos) return std::nullopt;
  return extract_last_number(solution.substr(at + 4));
}

bool numbers_equal(std::string_view a, std::string_view b) {
  const auto x = parse_double(a);
  const auto y = parse_double(b);
  if (!x || !y) return false;
  const double scale = std::max({1.0, std::abs(*x), std::abs(*y)});
  return std::abs(*x - *y) <= 1e-6 * scale;
}

std::optional<std::string> extract_choice(std::string_view s,
                                          std::span<const std::string> labels) {
  if (auto label = last_cued_label(s, "answer is", labels)) return label;
  if (auto label = last_cued_label(s, "answer:", labels)) return label;

  // A label opening the completion, standing alone or before ".", ")" or ":".
  size_t pos = 0;
  while (pos < s.size() && std::string_view(" \t\n(*[").find(s[pos]) != std::string_view::npos)
    ++pos;
  if (auto label = label_at(s, pos, labels)) {
    const size_t after = pos + label->size();
    if (after == s.size() || std::string_view(".):,*]\n").find(s[after]) != std::string_view::npos)
      return label;
  }

  std::optional<std::string> last;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!lone_before(s, i)) continue;
    if (auto label = label_at(s, i, labels)) last = label;
  }
  return last;
}

std::string canonical_label(std::string_view text) {
  std::string norm;
  for (const auto& word : words_of(text)) {
    if (!norm.empty()) norm += ' ';
    norm += word.text;
  }
  // "not_entailment": the underscore splits like a space.
  std::replace(norm.begin(), norm.end(), '_', ' ');
  auto it = synonyms().find(norm);
  return it != synonyms().end() ? it->second : norm;
}

std::optional<std::string> extract_label(std::string_view completion,
                                         std::span<const std::string> labels) {
  const auto words = words_of(completion);
  // The last "answer is X" / "answer: X" with a label word within three words.
  std::optional<std::string> cued;
  for (size_t i = 0; i + 1 < words.size(); ++i) {
    if (words[i].text != "answer") continue;
    size_t next = i + 1;
    if (words[next].text == "is") ++next;
    else if (completion.substr(words[i].begin + 6, 1) != ":") continue;
    if (auto label = first_label_word(words, next, labels, 3)) cued = label;
  }
  if (cued) return cued;
  return first_label_word(words, 0, labels, words.size());
}

std::string extract_code(std::string_view completion) {
  const size_t open = completion.find("```");
  if (open == std::string_view::npos) return std::string(completion);
  size_t body = completion.find('\n', open);
  if (body == std::string_view::npos) return "";
  ++body;
  const size_t close = completion.find("```", body);
  return std::string(completion.substr(body, close == std::string_view::npos
                                                 ? std::string_view::npos
                                                 : close - body));
}

}  // namespace t2::adaptation
