// Decision records and metrics: the hot write path. Rows are validated and
// encoded on the caller's thread, then queued; the writer inserts a decision and
// its expert rows in one savepoint, so a decision is never visible half-written.
#include <algorithm>
#include <cmath>
#include <set>

#include "store/reader_pool.h"
#include "store/sha256.h"
#include "store/store.h"
#include "store/writer.h"
#include "t2/error.h"

namespace t2::store {
namespace {

// The longest prefix of `text` of at most `max_bytes` that ends on a UTF-8
// character boundary (never splits a multi-byte sequence).
std::string utf8_prefix(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

// Appends `text` as a JSON string; plain names take the fast path.
void append_json_string(std::string& out, const std::string& text) {
  bool plain = true;
  for (unsigned char c : text) plain &= c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
  if (plain) {
    out.push_back('"');
    out.append(text);
    out.push_back('"');
    return;
  }
  out += nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Everything one INSERT needs, owned, so the op can outlive the caller's data.
struct DecisionRow {
  DecisionId id;
  int64_t time_us;
  std::string kind;
  std::optional<JobId> job;
  std::optional<std::string> task;
  std::string strategy;
  std::optional<int64_t> rank, depth;
  std::optional<double> estimated_cost, measured_cost, first_pass_ms, second_pass_ms;
  std::optional<std::string> request_id;
  std::array<uint8_t, 32> prompt_sha256;
  std::string experts_json;  // [["name", weight], ...]
  std::optional<std::string> first_pass, prompt_excerpt;
  std::vector<ExpertWeight> experts;
};

template <typename T>
std::optional<int64_t> widen(const std::optional<T>& v) {
  return v ? std::optional<int64_t>(*v) : std::nullopt;
}

void insert_decision(sql::Db& db, const DecisionRow& r) {
  // OR FAIL: no statement journal; a failing op is rolled back by the writer.
  sql::Stmt& stmt = db.prepare(
      "INSERT OR FAIL INTO decisions (id, time_us, kind, job_id, task, strategy, rank, depth,"
      " estimated_cost, measured_cost, first_pass_ms, second_pass_ms, request_id,"
      " prompt_sha256, experts, first_pass, prompt_excerpt)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  // The row outlives run(), so SQLite may read its strings in place.
  sql::ResetGuard guard(stmt);
  stmt.bind_all(r.id, r.time_us, sql::Ref{r.kind}, r.job, sql::ref(r.task),
                sql::Ref{r.strategy}, r.rank, r.depth, r.estimated_cost, r.measured_cost,
                r.first_pass_ms, r.second_pass_ms, sql::ref(r.request_id));
  stmt.bind_blob(14, r.prompt_sha256);
  stmt.bind(15, sql::Ref{r.experts_json});
  stmt.bind(16, sql::ref(r.first_pass)).bind(17, sql::ref(r.prompt_excerpt));
  while (stmt.step()) {
  }

  // Up to three expert rows per statement: most mixtures take one step. OR FAIL
  // again: a multi-row insert would otherwise open a statement journal.
  static constexpr const char* kInsertExperts[] = {
      "INSERT OR FAIL INTO decision_experts (expert, decision_id, weight) VALUES (?, ?, ?)",
      "INSERT OR FAIL INTO decision_experts (expert, decision_id, weight) VALUES (?, ?, ?),"
      " (?, ?, ?)",
      "INSERT OR FAIL INTO decision_experts (expert, decision_id, weight) VALUES (?, ?, ?),"
      " (?, ?, ?), (?, ?, ?)",
  };
  for (size_t first = 0; first < r.experts.size(); first += 3) {
    size_t count = std::min<size_t>(3, r.experts.size() - first);
    sql::Stmt& stmt = db.prepare(kInsertExperts[count - 1]);
    for (size_t k = 0; k < count; ++k) {
      const ExpertWeight& e = r.experts[first + k];
      int base = static_cast<int>(3 * k);
      stmt.bind(base + 1, sql::Ref{e.name}).bind(base + 2, r.id).bind(base + 3, e.weight);
    }
    stmt.run();
  }
}

void check_finite(const std::optional<double>& v, const char* name) {
  if (v && !std::isfinite(*v)) fail("store: decision {} is {}, not a finite number", name, *v);
}

}  // namespace

DecisionId Store::record_decision(const NewDecision& d) {
  if (d.strategy.empty()) fail("store: a decision needs its strategy");
  std::set<std::string_view> names;
  for (const ExpertWeight& e : d.experts) {
    if (e.name.empty()) fail("store: a decision lists an expert with no name");
    if (!names.insert(e.name).second) fail("store: a decision lists expert '{}' twice", e.name);
    if (!std::isfinite(e.weight)) fail("store: expert '{}' has weight {}", e.name, e.weight);
  }
  if (d.job && (*d.job < 1 || *d.job > last_job_id_.load())) {
    fail("store: a decision names job {}, which is not in this store", *d.job);
  }
  check_finite(d.estimated_cost, "estimated_cost");
  check_finite(d.measured_cost, "measured_cost");
  check_finite(d.first_pass_ms, "first_pass_ms");
  check_finite(d.second_pass_ms, "second_pass_ms");

  // LIMITATION: ids of decisions still queued when the process dies are handed
  // out again after restart (the next id is the largest committed + 1). Writing
  // a reserved high-water mark with each batch would make ids never repeat.
  DecisionRow row{
      next_decision_id_.fetch_add(1),
      to_us(d.time.value_or(now())),
      std::string(to_string(d.kind)),
      d.job,
      d.task,
      d.strategy,
      widen(d.rank),
      widen(d.depth),
      d.estimated_cost,
      d.measured_cost,
      d.first_pass_ms,
      d.second_pass_ms,
      d.request_id,
      sha256(d.prompt),
      {},
      d.first_pass.is_null()
          ? std::nullopt
          : std::optional(d.first_pass.dump(-1, ' ', false,
                                            nlohmann::json::error_handler_t::replace)),
      options_.redact_prompts ? std::nullopt
                              : std::optional(utf8_prefix(d.prompt, options_.excerpt_bytes)),
      d.experts,
  };
  // [["name",weight],...], written directly: this runs once per request.
  std::string& json = row.experts_json;
  json.reserve(2 + 32 * d.experts.size());
  json.push_back('[');
  for (const ExpertWeight& e : d.experts) {
    if (json.size() > 1) json.push_back(',');
    json.push_back('[');
    append_json_string(json, e.name);
    fmt::format_to(std::back_inserter(json), ",{}]", e.weight);
  }
  json.push_back(']');
  DecisionId id = row.id;
  writer_->post([row = std::move(row)](sql::Db& db) { insert_decision(db, row); });
  return id;
}

void Store::complete_decision(DecisionId id, const DecisionOutcome& o) {
  check_finite(o.measured_cost, "measured_cost");
  check_finite(o.first_pass_ms, "first_pass_ms");
  check_finite(o.second_pass_ms, "second_pass_ms");
  writer_->post([id, o](sql::Db& db) {
    // COALESCE keeps what the outcome does not set.
    sql::Stmt& stmt = db.prepare(
        "UPDATE decisions SET measured_cost = COALESCE(?, measured_cost),"
        " first_pass_ms = COALESCE(?, first_pass_ms),"
        " second_pass_ms = COALESCE(?, second_pass_ms), depth = COALESCE(?, depth)"
        " WHERE id = ?");
    stmt.bind_all(o.measured_cost, o.first_pass_ms, o.second_pass_ms, widen(o.depth), id);
    stmt.run();
    if (sqlite3_changes(db.raw()) == 0) fail("store: no decision {} to complete", id);
  });
}

void Store::record_metric(JobId job, const std::string& key, int64_t step, double value) {
  if (key.empty()) fail("store: a metric needs a key (job {})", job);
  int64_t t = to_us(now());
  writer_->post([job, key, step, value, t](sql::Db& db) {
    sql::Stmt& stmt = db.prepare(
        "INSERT INTO metrics (job_id, key, step, value, time_us) VALUES (?, ?, ?, ?, ?)");
    // NaN binds as NULL in SQLite; metrics() reads NULL back as NaN.
    stmt.bind_all(job, key, step, value, t);
    stmt.run();
  });
}

std::vector<Metric> Store::metrics(JobId job, const std::string& key) const {
  auto lease = readers_->acquire();
  sql::Stmt& stmt = lease.db().prepare(
      "SELECT step, value, time_us FROM metrics WHERE job_id = ? AND key = ?"
      " ORDER BY step, rowid");
  sql::ResetGuard guard(stmt);
  stmt.bind_all(job, key);
  std::vector<Metric> out;
  while (stmt.step()) {
    out.push_back({job, key, stmt.int64(0), stmt.opt_real(1).value_or(std::nan("")),
                   from_us(stmt.int64(2))});
  }
  return out;
}

}  // namespace t2::store
