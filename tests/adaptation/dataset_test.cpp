// Dataset readers on the real files in ../shared/data (record counts as its
// README lists them) and on hand-made malformed files (line numbers, skip vs reject).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "adaptation/dataset.h"
#include "t2/error.h"

namespace t2::adaptation {
namespace {

namespace fs = std::filesystem;

std::string data(const std::string& rel) { return std::string(T2_DATA_DIR) + "/" + rel; }

struct RealFile {
  const char* path;
  RecordFormat format;
  size_t records;
};

class RealDataset : public testing::TestWithParam<RealFile> {};

TEST_P(RealDataset, ReadsEveryRecord) {
  const RealFile& f = GetParam();
  const Dataset ds = read_dataset(data(f.path), f.format, OnBadLine::kReject);
  EXPECT_EQ(ds.records.size(), f.records);
  EXPECT_TRUE(ds.bad_lines.empty());
  for (size_t i = 0; i < ds.records.size(); ++i) {
    const Record& r = ds.records[i];
    ASSERT_EQ(r.index, int64_t(i));
    EXPECT_FALSE(r.reference.empty()) << f.path << " record " << i;
    EXPECT_FALSE(r.id.empty());
    for (const auto& field : record_fields(f.format)) EXPECT_TRUE(r.fields.count(field)) << field;
  }
}

INSTANTIATE_TEST_SUITE_P(
    SharedData, RealDataset,
    testing::Values(RealFile{"gsm8k/train.jsonl", RecordFormat::kGsm8k, 7473},
                    RealFile{"arc_easy/train.jsonl", RecordFormat::kArc, 1188},
                    RealFile{"arc_easy/validation.jsonl", RecordFormat::kArc, 570},
                    RealFile{"arc_challenge/validation.jsonl", RecordFormat::kArc, 299},
                    RealFile{"mbpp/train.jsonl", RecordFormat::kMbpp, 374},
                    RealFile{"mbpp/validation.jsonl", RecordFormat::kMbpp, 90},
                    RealFile{"mbpp/prompt.jsonl", RecordFormat::kMbpp, 10},
                    RealFile{"sst2/dev.jsonl", RecordFormat::kSst2, 436},
                    RealFile{"boolq/dev.jsonl", RecordFormat::kBoolq, 1635},
                    RealFile{"copa/dev.jsonl", RecordFormat::kCopa, 50},
                    RealFile{"rte/dev.jsonl", RecordFormat::kRte, 139}),
    [](const auto& info) {
      std::string name = info.param.path;
      for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name;
    });

TEST(Dataset, RecordsCarryTheirAnswers) {
  const auto gsm =
      read_dataset(data("gsm8k/train.jsonl"), RecordFormat::kGsm8k, OnBadLine::kReject);
  EXPECT_EQ(gsm.records[0].reference, "72");  // Natalia's clips
  EXPECT_EQ(gsm.records[0].id, "train:0");

  const auto arc = read_dataset(data("arc_easy/validation.jsonl"), RecordFormat::kArc,
                                OnBadLine::kReject);
  const Record& a = arc.records[0];
  EXPECT_EQ(a.id, "MCAS_2000_4_6");
  EXPECT_EQ(a.reference, "A");
  ASSERT_EQ(a.choices.size(), 4u);
  EXPECT_EQ(a.fields.at("labels"), "A, B, C or D");
  EXPECT_EQ(a.fields.at("choices").substr(0, 20), "A. cellular telephon");
  // Labels as given: some ARC records use 1-4 and five choices.
  size_t digit_labels = 0, five = 0;
  for (const auto& r : arc.records) {
    digit_labels += r.choices[0].label == "1";
    five += r.choices.size() == 5;
  }
  EXPECT_GT(digit_labels, 0u);
  EXPECT_GT(five, 0u);

  const auto mbpp = read_dataset(data("mbpp/validation.jsonl"), RecordFormat::kMbpp,
                                 OnBadLine::kReject);
  EXPECT_EQ(mbpp.records[0].id, "mbpp/511");
  EXPECT_EQ(mbpp.records[0].tests.size(), 3u);

  const auto copa = read_dataset(data("copa/dev.jsonl"), RecordFormat::kCopa, OnBadLine::kReject);
  EXPECT_EQ(copa.records[0].reference, "B");  // label 1: the second choice
  EXPECT_EQ(copa.records[0].fields.at("question"), "What happened as a result?");

  const auto rte = read_dataset(data("rte/dev.jsonl"), RecordFormat::kRte, OnBadLine::kReject);
  EXPECT_EQ(rte.records[0].reference, "no");  // not_entailment
  const auto sst = read_dataset(data("sst2/dev.jsonl"), RecordFormat::kSst2, OnBadLine::kReject);
  EXPECT_EQ(sst.records[0].reference, "positive");
  const auto boolq =
      read_dataset(data("boolq/dev.jsonl"), RecordFormat::kBoolq, OnBadLine::kReject);
  for (const auto& r : boolq.records) ASSERT_TRUE(r.reference == "yes" || r.reference == "no");
}

// A temp file removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    path_ = (fs::temp_directory_path() / ("t2-dataset-" + std::to_string(::getpid()) + "-" +
                                          std::to_string(counter_++) + ".jsonl")).string();
    std::ofstream(path_) << text;
  }
  ~TempFile() { fs::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

const char* kMalformedGsm8k =
    R"({"question": "1+1?", "answer": "1+1=2\n#### 2"})" "\n"
    R"({"question": "broken", "answer": )" "\n"                       // line 2: bad JSON
    "\n"                                                               // line 3: blank, ignored
    R"({"question": "2+2?"})" "\n"                                     // line 4: no answer
    R"({"question": 5, "answer": "#### 5"})" "\n"                      // line 5: wrong type
    R"({"question": "3+3?", "answer": "six"})" "\n"                    // line 6: no ####
    R"([1, 2, 3])" "\n"                                                // line 7: not an object
    R"({"question": "4+4?", "answer": "#### 8"})" "\n";

TEST(Dataset, RejectNamesFileAndLine) {
  TempFile f(kMalformedGsm8k);
  try {
    read_dataset(f.path(), RecordFormat::kGsm8k, OnBadLine::kReject);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(f.path() + ":2:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
    EXPECT_NE(msg.find("on_bad_line"), std::string::npos) << msg;  // says how to skip instead
  }
}

TEST(Dataset, SkipKeepsGoodLinesAndTheirIndices) {
  TempFile f(kMalformedGsm8k);
  const Dataset ds = read_dataset(f.path(), RecordFormat::kGsm8k, OnBadLine::kSkip);
  ASSERT_EQ(ds.records.size(), 2u);
  EXPECT_EQ(ds.records[0].reference, "2");
  EXPECT_EQ(ds.records[1].reference, "8");
  EXPECT_EQ(ds.records[1].index, 7);  // its line index, not its position among good ones
  ASSERT_EQ(ds.bad_lines.size(), 5u);
  const int64_t lines[] = {2, 4, 5, 6, 7};
  const char* reasons[] = {"not valid JSON", "missing field \"answer\"",
                           "field \"question\" should be a string", "no number after \"####\"",
                           "expected a JSON object"};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(ds.bad_lines[i].line, lines[i]);
    EXPECT_NE(ds.bad_lines[i].reason.find(reasons[i]), std::string::npos) << ds.bad_lines[i].reason;
  }
}

TEST(Dataset, FormatSpecificChecks) {
  auto reason = [](const std::string& line, RecordFormat format) -> std::string {
    try {
      parse_record(line, format, "x");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(reason(R"({"question": {"stem": "q", "choices": [{"text": "a", "label": "A"},
              {"text": "b", "label": "B"}]}, "answerKey": "C"})", RecordFormat::kArc)
                .find("answerKey \"C\" is not among"), std::string::npos);
  EXPECT_NE(reason(R"({"question": {"stem": "q", "choices": []}, "answerKey": "A"})",
                   RecordFormat::kArc).find("at least 2"), std::string::npos);
  EXPECT_NE(reason(R"({"sentence": "ok", "label": 2})", RecordFormat::kSst2).find("0 or 1"),
            std::string::npos);
  EXPECT_NE(reason(R"({"question": "q", "passage": "p", "label": "maybe"})", RecordFormat::kBoolq)
                .find("\"true\" or \"false\""), std::string::npos);
  EXPECT_NE(reason(R"({"premise": "p", "hypothesis": "h", "label": "neutral"})", RecordFormat::kRte)
                .find("not_entailment"), std::string::npos);
  EXPECT_NE(reason(R"({"premise": "p", "choice1": "a", "choice2": "b", "question": "why",
              "label": 0})", RecordFormat::kCopa).find("cause"), std::string::npos);
  EXPECT_NE(reason(R"({"text": "t", "code": "c", "task_id": 1, "test_list": []})",
                   RecordFormat::kMbpp).find("test_list"), std::string::npos);
}

TEST(Dataset, MissingFileIsAnError) {
  try {
    read_dataset("/nonexistent/x.jsonl", RecordFormat::kGsm8k, OnBadLine::kSkip);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.jsonl"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("T2_DATA_DIR"), std::string::npos);
  }
}

TEST(Dataset, FormatNames) {
  for (auto f : {RecordFormat::kGsm8k, RecordFormat::kArc, RecordFormat::kMbpp, RecordFormat::kSst2,
                 RecordFormat::kBoolq, RecordFormat::kCopa, RecordFormat::kRte})
    EXPECT_EQ(parse_record_format(record_format_name(f)), f);
  EXPECT_THROW(parse_record_format("squad"), Error);
  EXPECT_THROW(parse_on_bad_line("ignore"), Error);
}

}  // namespace
}  // namespace t2::adaptation
