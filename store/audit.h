// Audit queries over adaptation decisions: filters, time-ordered cursor pages,
// and group-by aggregates. Every user value is bound as a parameter, never
// spliced into SQL; parsing rejects unknown fields and malformed values.
// The same calls serve `t2 audit` (opened on a file) and GET /v1/decisions.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/records.h"
#include "store/time.h"

namespace t2::store {

class ReaderPool;

struct DecisionFilter {
  std::optional<Timestamp> since;  // inclusive
  std::optional<Timestamp> until;  // exclusive
  std::optional<JobId> job;
  std::optional<std::string> task;
  std::optional<std::string> strategy;
  std::optional<std::string> expert;  // decisions whose mixture includes it
  std::optional<std::string> request_id;
  std::optional<DecisionKind> kind;
  std::optional<int> rank;
};

enum class Order { newest_first, oldest_first };

constexpr int kDefaultPageLimit = 100;
constexpr int kMaxPageLimit = 1000;

struct PageRequest {
  int limit = kDefaultPageLimit;  // 1..kMaxPageLimit
  std::string cursor;             // empty: first page; else a next_cursor seen before
  Order order = Order::newest_first;
};

struct DecisionPage {
  std::vector<Decision> rows;
  std::string next_cursor;  // empty when this was the last page
};

enum class GroupField { strategy, task, expert, job, rank, kind, day, hour };
std::string_view to_string(GroupField field);
// "task,expert" -> {task, expert}; throws on unknown or repeated names.
std::vector<GroupField> parse_group_by(std::string_view text);

struct AggregateRow {
  std::vector<nlohmann::json> keys;  // one per group field; null where unknown
  int64_t count = 0;
  // count over the decisions of the same group without the expert field (so
  // group-by task,expert gives how often dispatch chose each expert per task);
  // over all matching decisions when expert is not grouped.
  double share = 0;
  std::optional<double> mean_first_pass_ms;
  std::optional<double> mean_second_pass_ms;
  std::optional<double> mean_estimated_cost;
  std::optional<double> mean_measured_cost;
  std::optional<double> mean_weight;  // only when grouped by expert
};

struct Aggregate {
  std::vector<GroupField> group_by;
  int64_t total = 0;               // matching decisions
  std::vector<AggregateRow> rows;  // by count, largest first
};

// What one audit call asks for, parsed from (name, value) pairs of a query
// string or a command line. Names: since, until, job, task, strategy, expert,
// request_id, kind, rank, limit, cursor, order (newest|oldest), group_by.
struct AuditRequest {
  DecisionFilter filter;
  PageRequest page;
  std::vector<GroupField> group_by;
};
AuditRequest parse_audit_request(const std::vector<std::pair<std::string, std::string>>& params,
                                 Timestamp reference_now);

// Read side of the store. Thread-safe: each call borrows its own connection.
class AuditReader {
 public:
  // Opens `path` read-only; throws t2::Error unless it is a current t2 store.
  static std::shared_ptr<AuditReader> open(const std::string& path, int busy_timeout_ms = 5000);
  explicit AuditReader(std::shared_ptr<ReaderPool> pool);

  DecisionPage query(const DecisionFilter& filter, const PageRequest& page) const;
  std::optional<Decision> get(DecisionId id) const;
  int64_t count(const DecisionFilter& filter) const;
  Aggregate aggregate(const std::vector<GroupField>& group_by,
                      const DecisionFilter& filter) const;
  // Calls `visit` for every matching decision in `order`, page by page (no
  // transaction spans the whole walk). Returns how many it visited.
  int64_t for_each(const DecisionFilter& filter, Order order,
                   const std::function<void(const Decision&)>& visit) const;

 private:
  std::shared_ptr<ReaderPool> pool_;
};

}  // namespace t2::store
