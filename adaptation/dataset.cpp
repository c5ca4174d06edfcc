// Dataset readers. Each format's parser checks the fields it needs and their
// types, so a malformed line fails with the field's name rather than later.
#include "adaptation/dataset.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "adaptation/answer.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::adaptation {

namespace {

using nlohmann::json;

const json& field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) fail("missing field \"{}\"", name);
  return *it;
}

std::string string_field(const json& obj, const char* name) {
  const json& v = field(obj, name);
  if (!v.is_string()) fail("field \"{}\" should be a string, found {}", name, v.type_name());
  return v.get<std::string>();
}

int64_t int_field(const json& obj, const char* name) {
  const json& v = field(obj, name);
  if (!v.is_number_integer()) fail("field \"{}\" should be an integer, found {}", name, v.dump());
  return v.get<int64_t>();
}

// "A. text\nB. text" and "A, B, C or D".
void render_choices(Record& r) {
  std::string lines, labels;
  for (size_t i = 0; i < r.choices.size(); ++i) {
    const auto& c = r.choices[i];
    lines += (i ? "\n" : "") + c.label + ". " + c.text;
    if (i) labels += i + 1 == r.choices.size() ? " or " : ", ";
    labels += c.label;
  }
  r.fields["choices"] = lines;
  r.fields["labels"] = labels;
}

void parse_gsm8k(const json& j, Record& r) {
  r.fields["question"] = string_field(j, "question");
  const std::string solution = string_field(j, "answer");
  auto number = gsm8k_reference(solution);
  if (!number) fail("field \"answer\" has no number after \"####\"");
  r.reference = *number;
}

void parse_arc(const json& j, Record& r) {
  if (j.contains("id") && j["id"].is_string()) r.id = j["id"].get<std::string>();
  const json& q = field(j, "question");
  if (!q.is_object()) fail("field \"question\" should be an object with stem and choices");
  r.fields["question"] = string_field(q, "stem");
  const json& choices = field(q, "choices");
  if (!choices.is_array() || choices.size() < 2)
    fail("field \"question.choices\" should be an array of at least 2 choices");
  for (const auto& c : choices) {
    if (!c.is_object()) fail("a choice should be an object with text and label");
    r.choices.push_back({string_field(c, "label"), string_field(c, "text")});
  }
  r.reference = string_field(j, "answerKey");
  bool known = false;
  for (const auto& c : r.choices) known = known || c.label == r.reference;
  if (!known) fail("answerKey \"{}\" is not among the choices' labels", r.reference);
  render_choices(r);
}

void parse_mbpp(const json& j, Record& r) {
  r.id = "mbpp/" + std::to_string(int_field(j, "task_id"));
  r.fields["text"] = string_field(j, "text");
  r.reference = string_field(j, "code");
  const json& tests = field(j, "test_list");
  if (!tests.is_array() || tests.empty()) fail("field \"test_list\" should be a non-empty array");
  for (const auto& t : tests) {
    if (!t.is_string()) fail("field \"test_list\" should hold strings");
    r.tests.push_back(t.get<std::string>());
  }
  if (j.contains("test_setup_code")) r.test_setup = string_field(j, "test_setup_code");
  std::string joined;
  for (const auto& t : r.tests) joined += t + "\n";
  r.fields["tests"] = joined;
  r.fields["first_test"] = r.tests.front();
}

void parse_sst2(const json& j, Record& r) {
  r.fields["sentence"] = string_field(j, "sentence");
  const int64_t label = int_field(j, "label");
  if (label != 0 && label != 1) fail("field \"label\" should be 0 or 1, found {}", label);
  r.reference = label == 1 ? "positive" : "negative";
}

void parse_boolq(const json& j, Record& r) {
  if (j.contains("idx") && j["idx"].is_number_integer())
    r.id = "boolq/" + std::to_string(j["idx"].get<int64_t>());
  r.fields["question"] = string_field(j, "question");
  r.fields["passage"] = string_field(j, "passage");
  const json& label = field(j, "label");
  if (label.is_boolean()) {
    r.reference = label.get<bool>() ? "yes" : "no";
  } else if (label.is_string() && (label == "true" || label == "false")) {
    r.reference = label == "true" ? "yes" : "no";
  } else {
    fail("field \"label\" should be \"true\" or \"false\", found {}", label.dump());
  }
}

void parse_copa(const json& j, Record& r) {
  if (j.contains("idx") && j["idx"].is_number_integer())
    r.id = "copa/" + std::to_string(j["idx"].get<int64_t>());
  r.fields["premise"] = string_field(j, "premise");
  const std::string question = string_field(j, "question");
  if (question != "cause" && question != "effect")
    fail("field \"question\" should be \"cause\" or \"effect\", found \"{}\"", question);
  r.fields["question"] = question == "cause" ? "What was the cause of this?"
                                             : "What happened as a result?";
  r.choices = {{"A", string_field(j, "choice1")}, {"B", string_field(j, "choice2")}};
  const int64_t label = int_field(j, "label");
  if (label != 0 && label != 1) fail("field \"label\" should be 0 or 1, found {}", label);
  r.reference = label == 0 ? "A" : "B";
  render_choices(r);
}

void parse_rte(const json& j, Record& r) {
  if (j.contains("idx") && j["idx"].is_number_integer())
    r.id = "rte/" + std::to_string(j["idx"].get<int64_t>());
  r.fields["premise"] = string_field(j, "premise");
  r.fields["hypothesis"] = string_field(j, "hypothesis");
  const std::string label = string_field(j, "label");
  if (label != "entailment" && label != "not_entailment")
    fail("field \"label\" should be \"entailment\" or \"not_entailment\", found \"{}\"", label);
  r.reference = label == "entailment" ? "yes" : "no";
}

}  // namespace

RecordFormat parse_record_format(std::string_view name) {
  if (name == "gsm8k") return RecordFormat::kGsm8k;
  if (name == "arc") return RecordFormat::kArc;
  if (name == "mbpp") return RecordFormat::kMbpp;
  if (name == "sst2") return RecordFormat::kSst2;
  if (name == "boolq") return RecordFormat::kBoolq;
  if (name == "copa") return RecordFormat::kCopa;
  if (name == "rte") return RecordFormat::kRte;
  fail("unknown record format '{}'; expected gsm8k, arc, mbpp, sst2, boolq, copa or rte", name);
}

const char* record_format_name(RecordFormat format) {
  switch (format) {
    case RecordFormat::kGsm8k: return "gsm8k";
    case RecordFormat::kArc: return "arc";
    case RecordFormat::kMbpp: return "mbpp";
    case RecordFormat::kSst2: return "sst2";
    case RecordFormat::kBoolq: return "boolq";
    case RecordFormat::kCopa: return "copa";
    case RecordFormat::kRte: return "rte";
  }
  return "?";
}

const std::vector<std::string>& record_fields(RecordFormat format) {
  static const std::vector<std::string> gsm8k{"question"};
  static const std::vector<std::string> arc{"question", "choices", "labels"};
  static const std::vector<std::string> mbpp{"text", "tests", "first_test"};
  static const std::vector<std::string> sst2{"sentence"};
  static const std::vector<std::string> boolq{"question", "passage"};
  static const std::vector<std::string> copa{"premise", "question", "choices", "labels"};
  static const std::vector<std::string> rte{"premise", "hypothesis"};
  switch (format) {
    case RecordFormat::kGsm8k: return gsm8k;
    case RecordFormat::kArc: return arc;
    case RecordFormat::kMbpp: return mbpp;
    case RecordFormat::kSst2: return sst2;
    case RecordFormat::kBoolq: return boolq;
    case RecordFormat::kCopa: return copa;
    case RecordFormat::kRte: return rte;
  }
  return gsm8k;
}

OnBadLine parse_on_bad_line(std::string_view name) {
  if (name == "skip") return OnBadLine::kSkip;
  if (name == "reject") return OnBadLine::kReject;
  fail("unknown on_bad_line '{}'; expected skip or reject", name);
}

Record parse_record(std::string_view line, RecordFormat format, const std::string& fallback_id) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::parse_error& e) {
    fail("not valid JSON ({})", e.what());
  }
  if (!j.is_object()) fail("expected a JSON object, found {}", j.type_name());

  Record r;
  r.id = fallback_id;
  switch (format) {
    case RecordFormat::kGsm8k: parse_gsm8k(j, r); break;
    case RecordFormat::kArc: parse_arc(j, r); break;
    case RecordFormat::kMbpp: parse_mbpp(j, r); break;
    case RecordFormat::kSst2: parse_sst2(j, r); break;
    case RecordFormat::kBoolq: parse_boolq(j, r); break;
    case RecordFormat::kCopa: parse_copa(j, r); break;
    case RecordFormat::kRte: parse_rte(j, r); break;
  }
  return r;
}

Dataset read_dataset(const std::string& path, RecordFormat format, OnBadLine on_bad) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const char* why = std::filesystem::exists(path) ? "unreadable" : "no such file";
    fail("cannot open dataset {} ({}); check the task's data paths and the data root "
         "(--data-root or T2_DATA_DIR)", path, why);
  }
  Dataset ds;
  ds.path = path;
  ds.format = format;
  const std::string stem = std::filesystem::path(path).stem().string();

  std::string line;
  for (int64_t index = 0; std::getline(in, line); ++index) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    try {
      Record r = parse_record(line, format, stem + ":" + std::to_string(index));
      r.index = index;
      ds.records.push_back(std::move(r));
    } catch (const Error& e) {
      if (on_bad == OnBadLine::kReject) {
        fail("{}:{}: malformed {} record: {} (set on_bad_line = \"skip\" in the task config "
             "to skip such lines)", path, index + 1, record_format_name(format), e.what());
      }
      log::get("adapt")->warn("{}:{}: skipping malformed {} record: {}", path, index + 1,
                              record_format_name(format), e.what());
      ds.bad_lines.push_back({index + 1, e.what()});
    }
  }
  return ds;
}

}  // namespace t2::adaptation
