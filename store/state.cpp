// Named state of the service's own parts: one JSON document per key, replaced
// whole on save (the scheduler's cost model lives here between runs).
// Invariant: a saved value is valid JSON; a load sees the newest committed save.
#include "store/reader_pool.h"
#include "store/store.h"
#include "store/time.h"
#include "store/writer.h"
#include "t2/error.h"

namespace t2::store {

void Store::save_state(const std::string& key, const nlohmann::json& value) {
  if (key.empty()) fail("store: service state needs a key");
  std::string text = value.dump();
  const int64_t t = to_us(now());
  writer_->post([key, text = std::move(text), t](sql::Db& db) {
    sql::Stmt& stmt = db.prepare(
        "INSERT INTO service_state (key, value, updated_us) VALUES (?, ?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
        " updated_us = excluded.updated_us");
    stmt.bind_all(key, text, t);
    stmt.run();
  });
}

std::optional<nlohmann::json> Store::load_state(const std::string& key) const {
  auto lease = readers_->acquire();
  sql::Stmt& stmt = lease.db().prepare("SELECT value FROM service_state WHERE key = ?");
  sql::ResetGuard guard(stmt);
  stmt.bind(1, key);
  if (!stmt.step()) return std::nullopt;
  return nlohmann::json::parse(stmt.text(0));
}

}  // namespace t2::store
