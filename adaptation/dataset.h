// Dataset readers: one JSON object per line in one of the benchmark formats of
// ../shared/data (gsm8k, arc, mbpp, sst2, boolq, copa, rte). Every record keeps
// its 0-based line index, so splits by index do not shift when a bad line is skipped.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace t2::adaptation {

enum class RecordFormat { kGsm8k, kArc, kMbpp, kSst2, kBoolq, kCopa, kRte };
RecordFormat parse_record_format(std::string_view name);  // throws t2::Error
const char* record_format_name(RecordFormat format);
// The template placeholders a format provides ("question", "choices", ...).
const std::vector<std::string>& record_fields(RecordFormat format);

enum class OnBadLine { kSkip, kReject };
OnBadLine parse_on_bad_line(std::string_view name);  // "skip" | "reject"; throws

struct Choice {
  std::string label;  // as given: "A".."E", "1".."4"
  std::string text;
};

struct Record {
  int64_t index = 0;  // 0-based line index in the file
  std::string id;     // the dataset's own id when it has one, else "<file stem>:<index>"
  std::map<std::string, std::string> fields;  // template placeholders
  // The answer to compare against: a number (gsm8k), a choice label (arc,
  // copa), a canonical word (sst2: positive/negative; boolq, rte: yes/no), or
  // the reference solution (mbpp).
  std::string reference;
  std::vector<Choice> choices;     // arc, copa
  std::vector<std::string> tests;  // mbpp: assert statements
  std::string test_setup;          // mbpp: code run before the tests
};

struct BadLine {
  int64_t line = 0;  // 1-based
  std::string reason;
};

struct Dataset {
  std::string path;
  RecordFormat format = RecordFormat::kGsm8k;
  std::vector<Record> records;     // in file order
  std::vector<BadLine> bad_lines;  // skipped ones (empty under kReject)
};

// Parses one line; throws t2::Error saying which field is missing or wrong.
// `fallback_id` names the record when the format carries no id of its own.
Record parse_record(std::string_view line, RecordFormat format, const std::string& fallback_id);

// Reads a whole file. Blank lines are ignored. A malformed line is reported as
// "path:line: reason" and either skipped (logged, listed in bad_lines) or
// rejected (t2::Error) as `on_bad` says. A missing file is always an error.
Dataset read_dataset(const std::string& path, RecordFormat format, OnBadLine on_bad);

}  // namespace t2::adaptation
