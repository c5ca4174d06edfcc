// Thin RAII wrappers over the SQLite C API, internal to store/: a connection, a
// prepared statement with typed bind/column calls, and a check helper that names
// the call, the SQL, the file and the line. Every SQLite error becomes t2::Error.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace t2::store::sql {

// Throws t2::Error when `rc` is not one of the accepted codes.
void check(int rc, sqlite3* db, const char* call, std::string_view context, const char* file,
           int line);
#define T2_SQLITE_CHECK(db, call, context) \
  ::t2::store::sql::check((call), (db), #call, (context), __FILE__, __LINE__)

// Text bound without a copy: SQLite reads the bytes in place, so they must stay
// alive and unchanged until the statement is reset.
struct Ref {
  std::string_view text;
};
inline std::optional<Ref> ref(const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  return Ref{*text};
}

class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, std::string_view sql);
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&& other) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  // Binds by 1-based index. std::nullopt binds NULL.
  Stmt& bind(int index, std::nullopt_t);
  Stmt& bind(int index, int64_t value);
  Stmt& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
  Stmt& bind(int index, double value);
  Stmt& bind(int index, std::string_view text);
  Stmt& bind(int index, const std::string& text) { return bind(index, std::string_view(text)); }
  Stmt& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
  Stmt& bind(int index, Ref text);
  Stmt& bind_blob(int index, std::span<const uint8_t> bytes);
  template <typename T>
  Stmt& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind(index, std::nullopt);
  }

  // Binds all arguments in order starting at 1.
  template <typename... Args>
  Stmt& bind_all(const Args&... args) {
    int index = 0;
    (bind(++index, args), ...);
    return *this;
  }

  // Steps once: true when a row is ready, false when done. Throws on errors.
  bool step();
  // Steps to completion, expecting no rows; resets afterwards.
  void run();
  // Resets and clears the bindings so the statement can be reused.
  void reset();

  bool is_null(int col) const;
  int64_t int64(int col) const;
  double real(int col) const;
  std::string text(int col) const;
  std::vector<uint8_t> blob(int col) const;
  std::optional<int64_t> opt_int64(int col) const;
  std::optional<double> opt_real(int col) const;
  std::optional<std::string> opt_text(int col) const;

  sqlite3_stmt* raw() const { return stmt_; }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when the scope ends, so a cached statement never holds a
// read snapshot or a half-stepped state after an exception.
class ResetGuard {
 public:
  explicit ResetGuard(Stmt& stmt) : stmt_(stmt) {}
  ~ResetGuard() { stmt_.reset(); }
  ResetGuard(const ResetGuard&) = delete;
  ResetGuard& operator=(const ResetGuard&) = delete;

 private:
  Stmt& stmt_;
};

// One connection plus a cache of its prepared statements (keyed by SQL text;
// the texts are constants of store/ or built from fixed fragments only).
class Db {
 public:
  enum class Mode { read_write_create, read_write, read_only };

  Db() = default;
  Db(const std::string& path, Mode mode, int busy_timeout_ms);
  Db(Db&& other) noexcept;
  Db& operator=(Db&& other) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  // The cached statement for `sql`, reset and ready to bind. The const char*
  // overload is for string literals: it is keyed by the literal's address, so
  // the hot path neither copies nor compares the SQL text.
  Stmt& prepare(const std::string& sql);
  Stmt& prepare(const char* literal_sql);
  // Runs a statement with no bindings and no result rows.
  void exec(const std::string& sql);
  void exec(const char* literal_sql);
  // Runs a statement with no bindings and returns its first column of its first row.
  std::optional<std::string> query_text(const std::string& sql);
  int64_t query_int(const std::string& sql);
  // Rolls back an open transaction, if any, never throwing: for error paths.
  void rollback_quietly() noexcept;

  sqlite3* raw() const { return db_; }
  const std::string& path() const { return path_; }
  bool open() const { return db_ != nullptr; }

 private:
  void close();

  sqlite3* db_ = nullptr;
  std::string path_;
  std::map<std::string, std::unique_ptr<Stmt>> cache_;
  std::unordered_map<const char*, std::unique_ptr<Stmt>> literal_cache_;
};

}  // namespace t2::store::sql
