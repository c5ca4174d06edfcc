// Audit queries against a brute-force reference over the same rows: every
// filter, both orders, cursor pages, aggregates and shares. User strings that
// look like SQL are matched as plain values. Exports round-trip.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <sstream>

#include "store/export.h"
#include "store/store.h"
#include "t2/error.h"
#include "test_util.h"

namespace t2::store {
namespace {

using test::TempDir;

constexpr const char* kSqlTask = "x' OR '1'='1";

struct Row {
  DecisionId id;
  NewDecision d;
};

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Store::open(dir_.file("t2.db"));
    for (int j = 0; j < 3; ++j) {
      jobs_.push_back(store_->submit_job({JobType::generate, {}, 0, "j" + std::to_string(j)})
                          .job.id);
    }
    std::mt19937 rng(1234);
    const std::vector<std::optional<std::string>> tasks = {"math", "code", "reasoning",
                                                           std::nullopt};
    const std::vector<std::string> strategies = {"prompt", "classifier", "fewshot"};
    const std::vector<std::string> experts = {"math", "code", "reasoning"};
    for (int i = 0; i < 600; ++i) {
      NewDecision d;
      d.time = base_ + std::chrono::seconds(i / 3);  // three decisions share each second
      d.kind = i % 4 == 0 ? DecisionKind::placement : DecisionKind::request;
      d.task = tasks[rng() % tasks.size()];
      d.strategy = strategies[rng() % strategies.size()];
      if (rng() % 4) d.job = jobs_[rng() % jobs_.size()];
      if (rng() % 3) d.rank = static_cast<int>(rng() % 4);
      for (const auto& name : experts) {
        if (rng() % 2) d.experts.push_back({name, (rng() % 100) / 100.0});
      }
      d.first_pass_ms = static_cast<double>(rng() % 50);
      d.estimated_cost = static_cast<double>(rng() % 10);
      d.prompt = "prompt " + std::to_string(i);
      if (i == 77) d.task = kSqlTask;
      if (i == 78) d.prompt = "comma, \"quote\"\nnewline";
      rows_.push_back({store_->record_decision(d), d});
    }
    store_->flush();
  }

  bool matches(const Row& r, const DecisionFilter& f) const {
    const NewDecision& d = r.d;
    if (f.since && *d.time < *f.since) return false;
    if (f.until && *d.time >= *f.until) return false;
    if (f.job && d.job != f.job) return false;
    if (f.task && d.task != f.task) return false;
    if (f.strategy && d.strategy != *f.strategy) return false;
    if (f.kind && d.kind != *f.kind) return false;
    if (f.rank && d.rank != f.rank) return false;
    if (f.expert) {
      bool found = false;
      for (const auto& e : d.experts) found |= e.name == *f.expert;
      if (!found) return false;
    }
    return true;
  }

  // Ids matching `f`, newest first (time, then id, descending).
  std::vector<DecisionId> expected(const DecisionFilter& f) const {
    std::vector<const Row*> hits;
    for (const Row& r : rows_) {
      if (matches(r, f)) hits.push_back(&r);
    }
    std::sort(hits.begin(), hits.end(), [](const Row* a, const Row* b) {
      return std::tie(*a->d.time, a->id) > std::tie(*b->d.time, b->id);
    });
    std::vector<DecisionId> ids;
    for (const Row* r : hits) ids.push_back(r->id);
    return ids;
  }

  std::vector<DecisionId> paged(const DecisionFilter& f, Order order, int limit) const {
    std::vector<DecisionId> ids;
    PageRequest page{limit, "", order};
    for (int pages = 0; pages < 10000; ++pages) {
      DecisionPage p = store_->query_decisions(f, page);
      EXPECT_LE(static_cast<int>(p.rows.size()), limit);
      for (const auto& d : p.rows) ids.push_back(d.id);
      if (p.next_cursor.empty()) break;
      page.cursor = p.next_cursor;
    }
    return ids;
  }

  std::vector<DecisionFilter> filters() const {
    Timestamp mid = base_ + std::chrono::seconds(50);
    std::vector<DecisionFilter> out(14);
    out[1].task = "math";
    out[2].strategy = "fewshot";
    out[3].expert = "code";
    out[4].job = jobs_[1];
    out[5].rank = 2;
    out[6].kind = DecisionKind::placement;
    out[7].since = mid;
    out[7].until = mid + std::chrono::seconds(60);
    out[8].task = "code";
    out[8].strategy = "prompt";
    out[9].expert = "reasoning";
    out[9].since = mid;
    out[10].task = "math";
    out[10].expert = "math";
    out[10].rank = 1;
    out[11].until = base_ + std::chrono::seconds(1);  // the first second: a tie of three
    out[12].task = "nothing-matches";
    out[13].job = jobs_[0];
    out[13].task = "reasoning";
    out[13].kind = DecisionKind::request;
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::vector<JobId> jobs_;
  std::vector<Row> rows_;
  Timestamp base_ = parse_time("2024-06-01T00:00:00Z", now());
};

TEST_F(AuditTest, FiltersMatchTheReferenceInBothOrdersAcrossPages) {
  for (const DecisionFilter& f : filters()) {
    std::vector<DecisionId> want = expected(f);
    EXPECT_EQ(paged(f, Order::newest_first, 7), want);
    std::reverse(want.begin(), want.end());
    EXPECT_EQ(paged(f, Order::oldest_first, 100), want);
    EXPECT_EQ(store_->audit().count(f), static_cast<int64_t>(want.size()));
  }
}

TEST_F(AuditTest, CursorPagesNeitherRepeatNorSkipOnTies) {
  std::vector<DecisionId> ids = paged({}, Order::newest_first, 2);  // pages split ties
  std::vector<DecisionId> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
  EXPECT_EQ(ids.size(), rows_.size());
}

TEST_F(AuditTest, SqlLookingValuesAreJustValues) {
  DecisionFilter f;
  f.task = kSqlTask;
  auto page = store_->query_decisions(f, {});
  ASSERT_EQ(page.rows.size(), 1u);
  EXPECT_EQ(page.rows[0].id, rows_[77].id);

  std::vector<std::string> hostiles = {"' OR 1=1 --", "math'; DROP TABLE decisions; --",
                                      "\" OR \"\"=\"", "%", "_", std::string("math\0x", 6)};
  for (const std::string& hostile : hostiles) {
    DecisionFilter g;
    g.strategy = hostile;
    g.expert = hostile;
    EXPECT_TRUE(store_->query_decisions(g, {}).rows.empty()) << hostile;
    EXPECT_EQ(store_->aggregate_decisions({GroupField::task}, g).total, 0) << hostile;
  }
  EXPECT_EQ(store_->audit().count({}), static_cast<int64_t>(rows_.size()));
  EXPECT_EQ(store_->integrity_check(), "ok");
}

TEST_F(AuditTest, BadPageRequestsAreRejected) {
  EXPECT_THROW(store_->query_decisions({}, {0, "", Order::newest_first}), Error);
  EXPECT_THROW(store_->query_decisions({}, {kMaxPageLimit + 1, "", Order::newest_first}), Error);
  for (std::string cursor : {"abc", "12", "12.", ".5", "1.2.3", "1.2 OR 1=1"}) {
    EXPECT_THROW(store_->query_decisions({}, {10, cursor, Order::newest_first}), Error)
        << cursor;
  }
}

TEST_F(AuditTest, CountsByStrategyAndMeansMatchTheReference) {
  Aggregate agg = store_->aggregate_decisions({GroupField::strategy}, {});
  EXPECT_EQ(agg.total, static_cast<int64_t>(rows_.size()));
  std::map<std::string, std::pair<int64_t, double>> want;  // count, latency sum
  for (const Row& r : rows_) {
    want[r.d.strategy].first += 1;
    want[r.d.strategy].second += *r.d.first_pass_ms;
  }
  ASSERT_EQ(agg.rows.size(), want.size());
  for (size_t i = 0; i < agg.rows.size(); ++i) {
    const AggregateRow& row = agg.rows[i];
    auto [count, sum] = want.at(row.keys.at(0).get<std::string>());
    EXPECT_EQ(row.count, count);
    EXPECT_NEAR(*row.mean_first_pass_ms, sum / count, 1e-9);
    EXPECT_NEAR(row.share, static_cast<double>(count) / rows_.size(), 1e-12);
    if (i > 0) {
      EXPECT_GE(agg.rows[i - 1].count, row.count);
    }
  }
}

TEST_F(AuditTest, ExpertSharePerTaskIsHowOftenDispatchChoseIt) {
  DecisionFilter f;
  f.kind = DecisionKind::request;
  Aggregate agg = store_->aggregate_decisions({GroupField::task, GroupField::expert}, f);
  std::map<std::string, int64_t> per_task;
  std::map<std::pair<std::string, std::string>, std::pair<int64_t, double>> per_pair;
  for (const Row& r : rows_) {
    if (!matches(r, f)) continue;
    std::string task = r.d.task.value_or("<null>");
    per_task[task] += 1;
    for (const auto& e : r.d.experts) {
      per_pair[{task, e.name}].first += 1;
      per_pair[{task, e.name}].second += e.weight;
    }
  }
  ASSERT_EQ(agg.rows.size(), per_pair.size());
  for (const AggregateRow& row : agg.rows) {
    std::string task = row.keys[0].is_null() ? "<null>" : row.keys[0].get<std::string>();
    auto [count, weight_sum] = per_pair.at({task, row.keys[1].get<std::string>()});
    EXPECT_EQ(row.count, count);
    EXPECT_NEAR(row.share, static_cast<double>(count) / per_task.at(task), 1e-12);
    EXPECT_NEAR(*row.mean_weight, weight_sum / count, 1e-9);
  }
}

TEST_F(AuditTest, GroupByExpertWithExpertFilterKeepsThatExpert) {
  DecisionFilter f;
  f.expert = "code";
  Aggregate agg = store_->aggregate_decisions({GroupField::expert, GroupField::day}, f);
  ASSERT_EQ(agg.rows.size(), 1u);
  EXPECT_EQ(agg.rows[0].keys[0], "code");
  EXPECT_EQ(agg.rows[0].keys[1], "2024-06-01");
  EXPECT_EQ(agg.rows[0].count, static_cast<int64_t>(expected(f).size()));
}

// Splits CSV text into records, honouring quotes (RFC 4180).
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> records(1, std::vector<std::string>(1));
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        records.back().back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        records.back().back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      records.back().emplace_back();
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      ++i;
      if (i + 1 < text.size()) records.emplace_back(1);
    } else {
      records.back().back() += c;
    }
  }
  return records;
}

TEST_F(AuditTest, ExportsRoundTripAsJsonlAndCsv) {
  DecisionFilter f;
  f.since = base_ + std::chrono::seconds(20);
  size_t want = expected(f).size();

  std::ostringstream jsonl;
  EXPECT_EQ(export_decisions(store_->audit(), f, Order::oldest_first, ExportFormat::jsonl,
                             jsonl),
            static_cast<int64_t>(want));
  std::istringstream lines(jsonl.str());
  std::string line;
  size_t count = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["id"] == rows_[78].id) {
      EXPECT_EQ(j["prompt_excerpt"], rows_[78].d.prompt);
    }
    ++count;
  }
  EXPECT_EQ(count, want);

  std::ostringstream csv;
  export_decisions(store_->audit(), f, Order::oldest_first, ExportFormat::csv, csv);
  auto records = parse_csv(csv.str());
  ASSERT_EQ(records.size(), want + 1);
  size_t columns = records[0].size();
  EXPECT_EQ(records[0].back(), "prompt_excerpt");
  bool saw_hostile = false;
  for (const auto& record : records) {
    EXPECT_EQ(record.size(), columns);
    saw_hostile |= record.back() == rows_[78].d.prompt;
  }
  EXPECT_TRUE(saw_hostile);

  std::ostringstream agg_csv;
  write_aggregate(agg_csv, store_->aggregate_decisions({GroupField::task}, f), ExportFormat::csv);
  EXPECT_EQ(parse_csv(agg_csv.str())[0][0], "task");
}

}  // namespace
}  // namespace t2::store
