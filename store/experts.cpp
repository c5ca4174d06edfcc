// The expert registry: each name once, with its vector inline or as a file whose
// SHA-256 is recorded, plus the base model it was trained on and its source job.
#include <cctype>

#include "store/reader_pool.h"
#include "store/store.h"
#include "store/writer.h"
#include "t2/error.h"

namespace t2::store {
namespace {

// Without the vector itself; its size is column 10.
constexpr const char* kExpertColumns =
    "SELECT name, task, base_model_hash, matrix_set, file_path, checksum,"
    " validation_accuracy, source_job, created_us, length(vector) FROM experts";

Expert read_expert(const sql::Stmt& s) {
  Expert e;
  e.name = s.text(0);
  e.task = s.text(1);
  e.base_model_hash = s.text(2);
  e.matrix_set = s.text(3);
  e.file_path = s.opt_text(4);
  e.checksum = s.opt_text(5);
  e.validation_accuracy = s.opt_real(6);
  e.source_job = s.opt_int64(7);
  e.created = from_us(s.int64(8));
  e.vector_bytes = s.opt_int64(9).value_or(0);
  return e;
}

bool is_hex_sha256(const std::string& text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

void validate(const Expert& e) {
  if (e.name.empty()) fail("store: an expert needs a name");
  if (e.task.empty()) fail("store: expert '{}' needs a task", e.name);
  if (e.base_model_hash.empty()) fail("store: expert '{}' needs its base model hash", e.name);
  if (e.matrix_set.empty()) fail("store: expert '{}' needs its matrix set", e.name);
  bool has_file = e.file_path.has_value();
  if (has_file == !e.vector.empty()) {
    fail("store: expert '{}' needs exactly one of an inline vector and a file path", e.name);
  }
  if (has_file && (!e.checksum || !is_hex_sha256(*e.checksum))) {
    fail("store: expert '{}' has a file path but no SHA-256 checksum (64 hex digits)", e.name);
  }
}

}  // namespace

void Store::register_expert(const Expert& expert) {
  validate(expert);
  writer_->call([&](sql::Db& db) {
    sql::Stmt& exists = db.prepare(kExpertColumns + std::string(" WHERE name = ?"));
    {
      sql::ResetGuard guard(exists);
      exists.bind(1, expert.name);
      if (exists.step()) {
        Expert old = read_expert(exists);
        fail("store: expert '{}' already exists (task '{}', created {}); register the new "
             "one under another name",
             expert.name, old.task, format_time(old.created));
      }
    }
    if (expert.source_job) {
      sql::Stmt& job = db.prepare("SELECT 1 FROM jobs WHERE id = ?");
      sql::ResetGuard guard(job);
      job.bind(1, *expert.source_job);
      if (!job.step()) {
        fail("store: expert '{}' names source job {}, which is not in this store", expert.name,
             *expert.source_job);
      }
    }
    sql::Stmt& insert = db.prepare(
        "INSERT INTO experts (name, task, base_model_hash, matrix_set, vector, file_path,"
        " checksum, validation_accuracy, source_job, created_us)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    insert.bind_all(expert.name, expert.task, expert.base_model_hash, expert.matrix_set);
    if (expert.vector.empty()) {
      insert.bind(5, std::nullopt);
    } else {
      insert.bind_blob(5, expert.vector);
    }
    insert.bind(6, expert.file_path).bind(7, expert.checksum);
    insert.bind(8, expert.validation_accuracy).bind(9, expert.source_job);
    insert.bind(10, to_us(expert.created == Timestamp{} ? now() : expert.created));
    insert.run();
  });
}

std::optional<Expert> Store::get_expert(const std::string& name) const {
  auto lease = readers_->acquire();
  sql::Stmt& stmt = lease.db().prepare(
      "SELECT name, task, base_model_hash, matrix_set, file_path, checksum,"
      " validation_accuracy, source_job, created_us, length(vector), vector FROM experts"
      " WHERE name = ?");
  sql::ResetGuard guard(stmt);
  stmt.bind(1, name);
  if (!stmt.step()) return std::nullopt;
  Expert e = read_expert(stmt);
  e.vector = stmt.blob(10);
  return e;
}

std::vector<Expert> Store::list_experts(const std::optional<std::string>& task) const {
  auto lease = readers_->acquire();
  sql::Stmt& stmt = lease.db().prepare(
      kExpertColumns + std::string(" WHERE ?1 IS NULL OR task = ?1 ORDER BY name"));
  sql::ResetGuard guard(stmt);
  stmt.bind(1, task);
  std::vector<Expert> out;
  while (stmt.step()) out.push_back(read_expert(stmt));
  return out;
}

}  // namespace t2::store
