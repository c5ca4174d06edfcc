// RAII wrappers over the SQLite C API. Every failing call throws t2::Error with
// the call, SQLite's message, the SQL (or file) it concerned and file:line.
#include "store/sqlite.h"

#include <utility>

#include "t2/error.h"

namespace t2::store::sql {

void check(int rc, sqlite3* db, const char* call, std::string_view context, const char* file,
           int line) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return;
  const char* message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  fail("sqlite: {} failed with {} ({}): {} [{}] at {}:{}", call, sqlite3_errstr(rc), rc, message,
       context, file, line);
}

Stmt::Stmt(sqlite3* db, std::string_view sql) : db_(db) {
  // Persistent: these statements live in a cache for the connection's life.
  T2_SQLITE_CHECK(db, sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                         SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr),
                  sql);
}

Stmt::Stmt(Stmt&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), stmt_(std::exchange(other.stmt_, nullptr)) {}

Stmt& Stmt::operator=(Stmt&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = std::exchange(other.db_, nullptr);
    stmt_ = std::exchange(other.stmt_, nullptr);
  }
  return *this;
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

Stmt& Stmt::bind(int index, std::nullopt_t) {
  T2_SQLITE_CHECK(db_, sqlite3_bind_null(stmt_, index), sqlite3_sql(stmt_));
  return *this;
}

Stmt& Stmt::bind(int index, int64_t value) {
  T2_SQLITE_CHECK(db_, sqlite3_bind_int64(stmt_, index, value), sqlite3_sql(stmt_));
  return *this;
}

Stmt& Stmt::bind(int index, double value) {
  T2_SQLITE_CHECK(db_, sqlite3_bind_double(stmt_, index, value), sqlite3_sql(stmt_));
  return *this;
}

Stmt& Stmt::bind(int index, std::string_view text) {
  // SQLITE_TRANSIENT: SQLite copies, so callers may pass temporaries.
  T2_SQLITE_CHECK(db_,
                  sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT,
                                      SQLITE_UTF8),
                  sqlite3_sql(stmt_));
  return *this;
}

Stmt& Stmt::bind(int index, Ref ref) {
  T2_SQLITE_CHECK(db_,
                  sqlite3_bind_text64(stmt_, index, ref.text.data(), ref.text.size(),
                                      SQLITE_STATIC, SQLITE_UTF8),
                  sqlite3_sql(stmt_));
  return *this;
}

Stmt& Stmt::bind_blob(int index, std::span<const uint8_t> bytes) {
  T2_SQLITE_CHECK(db_,
                  sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT),
                  sqlite3_sql(stmt_));
  return *this;
}

bool Stmt::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  T2_SQLITE_CHECK(db_, rc, sqlite3_sql(stmt_));
  return false;
}

void Stmt::run() {
  ResetGuard guard(*this);
  while (step()) {
  }
}

void Stmt::reset() {
  // The step's error was already reported; reset only returns it again.
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Stmt::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Stmt::int64(int col) const { return sqlite3_column_int64(stmt_, col); }
double Stmt::real(int col) const { return sqlite3_column_double(stmt_, col); }

std::string Stmt::text(int col) const {
  auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  if (!data) return {};
  return std::string(data, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::vector<uint8_t> Stmt::blob(int col) const {
  auto* data = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, col));
  if (!data) return {};
  return std::vector<uint8_t>(data, data + sqlite3_column_bytes(stmt_, col));
}

std::optional<int64_t> Stmt::opt_int64(int col) const {
  if (is_null(col)) return std::nullopt;
  return int64(col);
}

std::optional<double> Stmt::opt_real(int col) const {
  if (is_null(col)) return std::nullopt;
  return real(col);
}

std::optional<std::string> Stmt::opt_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return text(col);
}

Db::Db(const std::string& path, Mode mode, int busy_timeout_ms) : path_(path) {
  int flags = SQLITE_OPEN_NOMUTEX;  // one thread uses a connection at a time
  switch (mode) {
    case Mode::read_write_create: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE; break;
    case Mode::read_write: flags |= SQLITE_OPEN_READWRITE; break;
    case Mode::read_only: flags |= SQLITE_OPEN_READONLY; break;
  }
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    close();
    fail("store: cannot open database '{}': {} (check the path and its permissions)", path,
         message);
  }
  sqlite3_extended_result_codes(db_, 1);
  T2_SQLITE_CHECK(db_, sqlite3_busy_timeout(db_, busy_timeout_ms), path);
}

Db::Db(Db&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      path_(std::move(other.path_)),
      cache_(std::move(other.cache_)),
      literal_cache_(std::move(other.literal_cache_)) {}

Db& Db::operator=(Db&& other) noexcept {
  if (this != &other) {
    close();
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
    cache_ = std::move(other.cache_);
    literal_cache_ = std::move(other.literal_cache_);
  }
  return *this;
}

Db::~Db() { close(); }

void Db::close() {
  cache_.clear();  // statements must be finalized before the connection closes
  literal_cache_.clear();
  if (db_) sqlite3_close_v2(db_);
  db_ = nullptr;
}

Stmt& Db::prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    it = cache_.emplace(sql, std::make_unique<Stmt>(db_, sql)).first;
  } else {
    it->second->reset();
  }
  return *it->second;
}

Stmt& Db::prepare(const char* literal_sql) {
  auto it = literal_cache_.find(literal_sql);
  if (it == literal_cache_.end()) {
    it = literal_cache_.emplace(literal_sql, std::make_unique<Stmt>(db_, literal_sql)).first;
  } else {
    it->second->reset();
  }
  return *it->second;
}

void Db::exec(const std::string& sql) { prepare(sql).run(); }
void Db::exec(const char* literal_sql) { prepare(literal_sql).run(); }

std::optional<std::string> Db::query_text(const std::string& sql) {
  Stmt& stmt = prepare(sql);
  ResetGuard guard(stmt);
  if (!stmt.step()) return std::nullopt;
  return stmt.opt_text(0);
}

int64_t Db::query_int(const std::string& sql) {
  Stmt& stmt = prepare(sql);
  ResetGuard guard(stmt);
  if (!stmt.step()) fail("sqlite: '{}' returned no row on '{}'", sql, path_);
  return stmt.int64(0);
}

void Db::rollback_quietly() noexcept {
  if (!db_ || sqlite3_get_autocommit(db_)) return;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "ROLLBACK", -1, &stmt, nullptr) == SQLITE_OK) sqlite3_step(stmt);
  sqlite3_finalize(stmt);
}

}  // namespace t2::store::sql
