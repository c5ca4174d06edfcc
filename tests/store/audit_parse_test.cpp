// Parsing of user-supplied audit parameters and times: strict, with messages
// that name the field and what it expects; nothing malformed gets through.
#include <gtest/gtest.h>

#include "store/audit.h"
#include "t2/error.h"

namespace t2::store {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

const Timestamp kNow = parse_time("2024-06-01T12:00:00Z", Timestamp{});

std::string error_of(const Params& params) {
  try {
    parse_audit_request(params, kNow);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Time, FormatsAndParsesIso8601) {
  Timestamp t = parse_time("2024-02-29T23:59:58.123456Z", kNow);
  EXPECT_EQ(format_time(t), "2024-02-29T23:59:58.123456Z");
  EXPECT_EQ(parse_time("2024-02-29 23:59:58.123456", kNow), t);
  EXPECT_EQ(parse_time("2024-03-01T01:59:58.123456+02:00", kNow), t);
  EXPECT_EQ(parse_time("2024-02-29T18:59:58.123456-05:00", kNow), t);
  EXPECT_EQ(format_time(parse_time("1970-01-01", kNow)), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_time(parse_time("1969-12-31T23:59", kNow)), "1969-12-31T23:59:00.000000Z");
  EXPECT_EQ(format_time(parse_time("2024-06-01T10:00:00.5Z", kNow)),
            "2024-06-01T10:00:00.500000Z");
}

TEST(Time, ParsesRelativeTimes) {
  EXPECT_EQ(parse_time("now", kNow), kNow);
  EXPECT_EQ(format_time(parse_time("-2h", kNow)), "2024-06-01T10:00:00.000000Z");
  EXPECT_EQ(format_time(parse_time("-7d", kNow)), "2024-05-25T12:00:00.000000Z");
  EXPECT_EQ(format_time(parse_time("-90s", kNow)), "2024-06-01T11:58:30.000000Z");
}

TEST(Time, RejectsMalformedTimesWithAClearMessage) {
  for (std::string bad : {"", "yesterday", "2024-13-01", "2023-02-29", "2024-06-31",
                          "2024-6-1", "2024-06-01T24:00", "2024-06-01T12", "2024-06-01T12:00Zx",
                          "2024-06-01T12:00+2", "-5y", "-h", "- 5h", "1717243200",
                          "2024-06-01'; DROP TABLE decisions; --", "2024-06-01T12:00:00."}) {
    try {
      parse_time(bad, kNow);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("expected ISO 8601"), std::string::npos) << e.what();
    }
  }
}

TEST(AuditParse, BuildsFilterPageAndGrouping) {
  AuditRequest r = parse_audit_request({{"since", "-1d"},
                                        {"until", "2024-06-01T11:00:00Z"},
                                        {"task", "math"},
                                        {"strategy", "a'b"},
                                        {"expert", "code"},
                                        {"job", "17"},
                                        {"rank", "3"},
                                        {"kind", "placement"},
                                        {"limit", "25"},
                                        {"order", "oldest"},
                                        {"group_by", "task,expert"}},
                                       kNow);
  EXPECT_EQ(format_time(*r.filter.since), "2024-05-31T12:00:00.000000Z");
  EXPECT_EQ(r.filter.task, "math");
  EXPECT_EQ(r.filter.strategy, "a'b");
  EXPECT_EQ(r.filter.job, 17);
  EXPECT_EQ(r.filter.rank, 3);
  EXPECT_EQ(r.filter.kind, DecisionKind::placement);
  EXPECT_EQ(r.page.limit, 25);
  EXPECT_EQ(r.page.order, Order::oldest_first);
  EXPECT_EQ(r.group_by, (std::vector<GroupField>{GroupField::task, GroupField::expert}));
}

TEST(AuditParse, RejectsUnknownRepeatedEmptyAndMalformedFields) {
  struct Case {
    Params params;
    std::string says;
  };
  std::vector<Case> cases = {
      {{{"tsk", "math"}}, "unknown field 'tsk'; expected one of: since,"},
      {{{"task", "a"}, {"task", "b"}}, "given twice"},
      {{{"task", ""}}, "is empty"},
      {{{"task", std::string(600, 'x')}}, "at most 512"},
      {{{"since", "last tuesday"}}, "bad time 'last tuesday'"},
      {{{"job", "12abc"}}, "bad job '12abc'"},
      {{{"job", "0"}}, "bad job"},
      {{{"rank", "-1"}}, "bad rank"},
      {{{"limit", "5000"}}, "bad limit"},
      {{{"kind", "batch"}}, "unknown decision kind 'batch'"},
      {{{"order", "up"}}, "bad order"},
      {{{"group_by", "task;DROP"}}, "bad group_by field 'task;DROP'"},
      {{{"group_by", "task,task"}}, "listed twice"},
      {{{"group_by", "task,"}}, "bad group_by field ''"},
      {{{"since", "2024-06-02"}, {"until", "2024-06-01"}}, "is not before until"},
  };
  for (const Case& c : cases) {
    std::string message = error_of(c.params);
    EXPECT_NE(message.find(c.says), std::string::npos)
        << "params[0]=" << c.params[0].first << " got: '" << message << "'";
  }
}

}  // namespace
}  // namespace t2::store
