// Turns user-supplied (name, value) pairs into an AuditRequest. Unknown names,
// repeated names, empty or oversized values, bad numbers and bad times are
// rejected with a message naming the field and what it expects.
#include "store/audit.h"

#include <fmt/ranges.h>

#include <array>
#include <charconv>
#include <set>

#include "t2/error.h"

namespace t2::store {
namespace {

constexpr std::array<std::string_view, 8> kGroupNames = {"strategy", "task", "expert", "job",
                                                          "rank",     "kind", "day",    "hour"};
constexpr std::array<std::string_view, 13> kFieldNames = {
    "since", "until", "job",   "task",   "strategy", "expert",  "request_id",
    "kind",  "rank",  "limit", "cursor", "order",    "group_by"};
constexpr size_t kMaxValueBytes = 512;

int64_t parse_integer(std::string_view name, std::string_view text, int64_t lo, int64_t hi) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < lo || value > hi) {
    fail("bad {} '{}': expected an integer from {} to {}", name, text, lo, hi);
  }
  return value;
}

}  // namespace

std::string_view to_string(GroupField field) { return kGroupNames[static_cast<size_t>(field)]; }

std::vector<GroupField> parse_group_by(std::string_view text) {
  std::vector<GroupField> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view name = text.substr(start, comma == std::string_view::npos
                                                   ? std::string_view::npos
                                                   : comma - start);
    size_t i = 0;
    while (i < kGroupNames.size() && kGroupNames[i] != name) ++i;
    if (i == kGroupNames.size()) {
      fail("bad group_by field '{}'; expected a comma-separated list of: {}", name,
           fmt::join(kGroupNames, ", "));
    }
    auto field = static_cast<GroupField>(i);
    for (GroupField seen : out) {
      if (seen == field) fail("group_by field '{}' is listed twice", name);
    }
    out.push_back(field);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

AuditRequest parse_audit_request(const std::vector<std::pair<std::string, std::string>>& params,
                                 Timestamp reference_now) {
  AuditRequest out;
  std::set<std::string> seen;
  for (const auto& [name, value] : params) {
    bool known = false;
    for (auto field : kFieldNames) known |= field == name;
    if (!known) {
      fail("unknown field '{}'; expected one of: {}", name, fmt::join(kFieldNames, ", "));
    }
    if (!seen.insert(name).second) fail("field '{}' is given twice", name);
    if (value.empty()) fail("field '{}' is empty; give a value or leave the field out", name);
    if (value.size() > kMaxValueBytes) {
      fail("field '{}' is {} bytes long; at most {} are accepted", name, value.size(),
           kMaxValueBytes);
    }

    DecisionFilter& f = out.filter;
    if (name == "since") {
      f.since = parse_time(value, reference_now);
    } else if (name == "until") {
      f.until = parse_time(value, reference_now);
    } else if (name == "job") {
      f.job = parse_integer("job", value, 1, INT64_MAX);
    } else if (name == "task") {
      f.task = value;
    } else if (name == "strategy") {
      f.strategy = value;
    } else if (name == "expert") {
      f.expert = value;
    } else if (name == "request_id") {
      f.request_id = value;
    } else if (name == "kind") {
      f.kind = decision_kind_from(value);
    } else if (name == "rank") {
      f.rank = static_cast<int>(parse_integer("rank", value, 0, INT32_MAX));
    } else if (name == "limit") {
      out.page.limit = static_cast<int>(parse_integer("limit", value, 1, kMaxPageLimit));
    } else if (name == "cursor") {
      out.page.cursor = value;
    } else if (name == "order") {
      if (value == "newest") {
        out.page.order = Order::newest_first;
      } else if (value == "oldest") {
        out.page.order = Order::oldest_first;
      } else {
        fail("bad order '{}': expected newest or oldest", value);
      }
    } else if (name == "group_by") {
      out.group_by = parse_group_by(value);
    }
  }
  if (out.filter.since && out.filter.until && *out.filter.since >= *out.filter.until) {
    fail("since ({}) is not before until ({}); the range would be empty",
         format_time(*out.filter.since), format_time(*out.filter.until));
  }
  return out;
}

}  // namespace t2::store
