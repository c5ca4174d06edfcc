// Audit queries. SQL is assembled only from the fixed fragments below, chosen
// by which filter fields are set; every value goes through a bound parameter.
// Pages are ordered by (time, id) and continue from a cursor holding both.
#include "store/audit.h"

#include <charconv>
#include <map>
#include <variant>

#include "store/reader_pool.h"
#include "store/schema.h"
#include "store/sha256.h"
#include "t2/error.h"

namespace t2::store {
namespace {

using Value = std::variant<int64_t, std::string>;

// A WHERE clause and the values its placeholders take, in order.
struct Where {
  std::string sql = " WHERE 1";
  std::vector<Value> values;

  void add(const char* fragment, Value value) {
    sql += fragment;
    values.push_back(std::move(value));
  }
  void bind(sql::Stmt& stmt, int first = 1) const {
    int index = first;
    for (const Value& v : values) {
      std::visit([&](const auto& x) { stmt.bind(index++, x); }, v);
    }
  }
};

// `expert_joined`: the query joins decision_experts as `e` and groups by it.
Where where_of(const DecisionFilter& f, bool expert_joined = false) {
  Where w;
  if (f.since) w.add(" AND d.time_us >= ?", to_us(*f.since));
  if (f.until) w.add(" AND d.time_us < ?", to_us(*f.until));
  if (f.job) w.add(" AND d.job_id = ?", *f.job);
  if (f.task) w.add(" AND d.task = ?", *f.task);
  if (f.strategy) w.add(" AND d.strategy = ?", *f.strategy);
  if (f.request_id) w.add(" AND d.request_id = ?", *f.request_id);
  if (f.kind) w.add(" AND d.kind = ?", std::string(to_string(*f.kind)));
  if (f.rank) w.add(" AND d.rank = ?", static_cast<int64_t>(*f.rank));
  if (f.expert) {
    // LIMITATION: unjoined, this walks the other filters' index in time order
    // and probes decision_experts per row, so a rarely chosen expert scans far
    // for one page. Driving the query from decision_experts (expert,
    // decision_id) when the expert is rare would lift it.
    w.add(expert_joined ? " AND e.expert = ?"
                        : " AND EXISTS (SELECT 1 FROM decision_experts x"
                          " WHERE x.decision_id = d.id AND x.expert = ?)",
          *f.expert);
  }
  return w;
}

constexpr const char* kDecisionColumns =
    "SELECT d.id, d.time_us, d.kind, d.job_id, d.task, d.strategy, d.rank, d.depth,"
    " d.estimated_cost, d.measured_cost, d.first_pass_ms, d.second_pass_ms, d.request_id,"
    " d.prompt_sha256, d.experts, d.first_pass, d.prompt_excerpt"
    " FROM decisions d";

std::optional<int> opt_int(const sql::Stmt& s, int col) {
  auto v = s.opt_int64(col);
  if (!v) return std::nullopt;
  return static_cast<int>(*v);
}

Decision read_decision(const sql::Stmt& s) {
  Decision d;
  d.id = s.int64(0);
  d.time = from_us(s.int64(1));
  d.kind = decision_kind_from(s.text(2));
  d.job = s.opt_int64(3);
  d.task = s.opt_text(4);
  d.strategy = s.text(5);
  d.rank = opt_int(s, 6);
  d.depth = opt_int(s, 7);
  d.estimated_cost = s.opt_real(8);
  d.measured_cost = s.opt_real(9);
  d.first_pass_ms = s.opt_real(10);
  d.second_pass_ms = s.opt_real(11);
  d.request_id = s.opt_text(12);
  d.prompt_sha256 = to_hex(s.blob(13));
  for (const auto& pair : nlohmann::json::parse(s.text(14))) {
    d.experts.push_back({pair.at(0).get<std::string>(), pair.at(1).get<double>()});
  }
  auto first_pass = s.opt_text(15);
  d.first_pass = first_pass ? nlohmann::json::parse(*first_pass) : nlohmann::json();
  d.prompt_excerpt = s.opt_text(16);
  return d;
}

std::string make_cursor(const Decision& last) {
  return fmt::format("{}.{}", to_us(last.time), last.id);
}

std::pair<int64_t, int64_t> parse_cursor(const std::string& cursor) {
  auto dot = cursor.find('.');
  int64_t time_us = 0, id = 0;
  bool ok = dot != std::string::npos;
  if (ok) {
    const char* begin = cursor.data();
    const char* end = begin + cursor.size();
    auto [p1, e1] = std::from_chars(begin, begin + dot, time_us);
    auto [p2, e2] = std::from_chars(begin + dot + 1, end, id);
    ok = e1 == std::errc() && p1 == begin + dot && e2 == std::errc() && p2 == end;
  }
  if (!ok) {
    fail("bad cursor '{}': pass the next_cursor of a previous page unchanged, or none for "
         "the first page",
         cursor);
  }
  return {time_us, id};
}

std::string group_expression(GroupField field) {
  switch (field) {
    case GroupField::strategy: return "d.strategy";
    case GroupField::task: return "d.task";
    case GroupField::expert: return "e.expert";
    case GroupField::job: return "d.job_id";
    case GroupField::rank: return "d.rank";
    case GroupField::kind: return "d.kind";
    case GroupField::day: return "strftime('%Y-%m-%d', d.time_us / 1000000, 'unixepoch')";
    case GroupField::hour:
      return "strftime('%Y-%m-%dT%H:00Z', d.time_us / 1000000, 'unixepoch')";
  }
  return "NULL";
}

nlohmann::json key_value(const sql::Stmt& s, int col) {
  switch (sqlite3_column_type(s.raw(), col)) {
    case SQLITE_NULL: return nullptr;
    case SQLITE_INTEGER: return s.int64(col);
    case SQLITE_FLOAT: return s.real(col);
    default: return s.text(col);
  }
}

// Runs one GROUP BY over `fields`; with_means adds the averages.
std::vector<AggregateRow> group_query(sql::Db& db, const std::vector<GroupField>& fields,
                                      const DecisionFilter& filter, bool with_means) {
  bool by_expert = false;
  std::string keys;
  for (GroupField f : fields) {
    by_expert |= f == GroupField::expert;
    keys += group_expression(f) + ", ";
  }
  std::string sql = "SELECT " + keys + "count(*)";
  if (with_means) {
    sql += ", avg(d.first_pass_ms), avg(d.second_pass_ms), avg(d.estimated_cost),"
           " avg(d.measured_cost)";
    sql += by_expert ? ", avg(e.weight)" : ", NULL";
  }
  sql += " FROM decisions d";
  if (by_expert) sql += " JOIN decision_experts e ON e.decision_id = d.id";
  Where where = where_of(filter, by_expert);
  sql += where.sql;
  if (!fields.empty()) {
    sql += " GROUP BY ";
    for (size_t i = 0; i < fields.size(); ++i) sql += (i ? ", " : "") + std::to_string(i + 1);
  }
  sql += " ORDER BY " + std::to_string(fields.size() + 1) + " DESC";
  for (size_t i = 0; i < fields.size(); ++i) sql += ", " + std::to_string(i + 1);

  sql::Stmt& stmt = db.prepare(sql);
  sql::ResetGuard guard(stmt);
  where.bind(stmt);
  std::vector<AggregateRow> rows;
  int n = static_cast<int>(fields.size());
  while (stmt.step()) {
    AggregateRow row;
    for (int i = 0; i < n; ++i) row.keys.push_back(key_value(stmt, i));
    row.count = stmt.int64(n);
    if (with_means) {
      row.mean_first_pass_ms = stmt.opt_real(n + 1);
      row.mean_second_pass_ms = stmt.opt_real(n + 2);
      row.mean_estimated_cost = stmt.opt_real(n + 3);
      row.mean_measured_cost = stmt.opt_real(n + 4);
      row.mean_weight = stmt.opt_real(n + 5);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

std::shared_ptr<AuditReader> AuditReader::open(const std::string& path, int busy_timeout_ms) {
  schema::expect_readable(path);
  auto pool = std::make_shared<ReaderPool>(path, busy_timeout_ms);
  {
    auto lease = pool->acquire();
    schema::expect_current(lease.db(), path);
  }
  return std::make_shared<AuditReader>(std::move(pool));
}

AuditReader::AuditReader(std::shared_ptr<ReaderPool> pool) : pool_(std::move(pool)) {}

DecisionPage AuditReader::query(const DecisionFilter& filter, const PageRequest& page) const {
  if (page.limit < 1 || page.limit > kMaxPageLimit) {
    fail("bad limit {}: expected 1 to {}", page.limit, kMaxPageLimit);
  }
  bool newest = page.order == Order::newest_first;
  Where where = where_of(filter);
  if (!page.cursor.empty()) {
    // (time, id) strictly past the cursor; the first term keeps the index range.
    auto [time_us, id] = parse_cursor(page.cursor);
    where.add(newest ? " AND d.time_us <= ?" : " AND d.time_us >= ?", time_us);
    where.add(newest ? " AND (d.time_us < ?" : " AND (d.time_us > ?", time_us);
    where.add(newest ? " OR d.id < ?)" : " OR d.id > ?)", id);
  }
  std::string sql = kDecisionColumns + where.sql +
                    (newest ? " ORDER BY d.time_us DESC, d.id DESC LIMIT ?"
                            : " ORDER BY d.time_us, d.id LIMIT ?");

  auto lease = pool_->acquire();
  sql::Stmt& stmt = lease.db().prepare(sql);
  sql::ResetGuard guard(stmt);
  where.bind(stmt);
  stmt.bind(static_cast<int>(where.values.size()) + 1, static_cast<int64_t>(page.limit) + 1);

  DecisionPage out;
  while (stmt.step()) {
    if (static_cast<int>(out.rows.size()) == page.limit) {
      out.next_cursor = make_cursor(out.rows.back());  // one more row exists
      break;
    }
    out.rows.push_back(read_decision(stmt));
  }
  return out;
}

std::optional<Decision> AuditReader::get(DecisionId id) const {
  auto lease = pool_->acquire();
  sql::Stmt& stmt = lease.db().prepare(std::string(kDecisionColumns) + " WHERE d.id = ?");
  sql::ResetGuard guard(stmt);
  stmt.bind(1, id);
  if (!stmt.step()) return std::nullopt;
  return read_decision(stmt);
}

int64_t AuditReader::count(const DecisionFilter& filter) const {
  Where where = where_of(filter);
  auto lease = pool_->acquire();
  sql::Stmt& stmt = lease.db().prepare("SELECT count(*) FROM decisions d" + where.sql);
  sql::ResetGuard guard(stmt);
  where.bind(stmt);
  stmt.step();
  return stmt.int64(0);
}

// LIMITATION: aggregates scan every matching decision (about a second per
// million on one core); hourly rollup tables kept by the writer would make
// dashboard queries independent of the table size.
Aggregate AuditReader::aggregate(const std::vector<GroupField>& group_by,
                                 const DecisionFilter& filter) const {
  Aggregate out;
  out.group_by = group_by;
  auto lease = pool_->acquire();
  sql::Db& db = lease.db();
  // One read transaction, so the rows, the total and the shares agree.
  db.exec("BEGIN");
  try {
    out.rows = group_query(db, group_by, filter, true);
    out.total = group_query(db, {}, filter, false).at(0).count;

    // Denominators of the shares: the same grouping without the expert field.
    std::vector<GroupField> others;
    std::vector<size_t> other_index;
    for (size_t i = 0; i < group_by.size(); ++i) {
      if (group_by[i] == GroupField::expert) continue;
      others.push_back(group_by[i]);
      other_index.push_back(i);
    }
    std::map<std::string, int64_t> denominators;
    bool by_expert = others.size() != group_by.size();
    if (by_expert && !others.empty()) {
      for (const auto& row : group_query(db, others, filter, false)) {
        denominators[nlohmann::json(row.keys).dump()] = row.count;
      }
    }
    for (auto& row : out.rows) {
      int64_t denominator = out.total;
      if (by_expert && !others.empty()) {
        std::vector<nlohmann::json> keys;
        for (size_t i : other_index) keys.push_back(row.keys[i]);
        denominator = denominators[nlohmann::json(keys).dump()];
      }
      row.share = denominator > 0 ? static_cast<double>(row.count) / denominator : 0.0;
    }
    db.exec("COMMIT");
  } catch (...) {
    db.rollback_quietly();
    throw;
  }
  return out;
}

// LIMITATION: each page is its own read transaction, so a decision committed
// during the walk with a time before the cursor is not visited. One long read
// transaction would see a single snapshot but hold WAL checkpoints back.
int64_t AuditReader::for_each(const DecisionFilter& filter, Order order,
                              const std::function<void(const Decision&)>& visit) const {
  PageRequest page{kMaxPageLimit, "", order};
  int64_t visited = 0;
  for (;;) {
    DecisionPage batch = query(filter, page);
    for (const Decision& d : batch.rows) visit(d);
    visited += static_cast<int64_t>(batch.rows.size());
    if (batch.next_cursor.empty()) return visited;
    page.cursor = std::move(batch.next_cursor);
  }
}

}  // namespace t2::store
