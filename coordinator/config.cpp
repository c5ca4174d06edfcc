// TOML to ServiceConfig, key by key (see config.h).
#include "coordinator/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "t2/error.h"

namespace t2::coordinator {
namespace {

struct Reader {
  const std::string& origin;

  const toml::table* section(const toml::table& root, const char* name,
                             const std::set<std::string>& keys) const {
    const toml::node* node = root.get(name);
    if (!node) return nullptr;
    const toml::table* t = node->as_table();
    if (!t) fail("{}: [{}] must be a table", origin, name);
    for (const auto& [key, value] : *t)
      if (!keys.count(std::string(key.str())))
        fail("{}: unknown key '{}' in [{}]; known: {}", origin, key.str(), name,
             fmt::join(keys, ", "));
    return t;
  }

  template <typename T>
  void get(const toml::table* t, const char* section, const char* key, T& out) const {
    if (!t) return;
    const toml::node* node = t->get(key);
    if (!node) return;
    if constexpr (std::is_same_v<T, std::string>) {
      auto v = node->value<std::string>();
      if (!v) fail("{}: [{}] {} must be a string", origin, section, key);
      out = *v;
    } else if constexpr (std::is_same_v<T, bool>) {
      auto v = node->value<bool>();
      if (!v) fail("{}: [{}] {} must be true or false", origin, section, key);
      out = *v;
    } else if constexpr (std::is_floating_point_v<T>) {
      auto v = node->value<double>();
      if (!v) fail("{}: [{}] {} must be a number", origin, section, key);
      out = T(*v);
    } else {
      auto v = node->value<int64_t>();
      if (!v) fail("{}: [{}] {} must be an integer", origin, section, key);
      out = T(*v);
    }
  }
};

void check_positive(double v, const std::string& origin, const char* what) {
  if (!(v > 0)) fail("{}: {} must be positive, found {}", origin, what, v);
}

}  // namespace

ServiceConfig parse_config(const std::string& text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    fail("{}:{}:{}: {}", origin, e.source().begin.line, e.source().begin.column,
         e.description());
  }
  const std::set<std::string> sections = {"model", "store", "http", "tasks", "experts",
                                          "worker", "train", "scheduler"};
  for (const auto& [key, value] : root)
    if (!sections.count(std::string(key.str())))
      fail("{}: unknown section [{}]; known: {}", origin, key.str(), fmt::join(sections, ", "));

  ServiceConfig c;
  c.origin = origin;
  Reader r{origin};

  const auto* model = r.section(root, "model", {"path", "matrix_set", "cache_dir"});
  r.get(model, "model", "path", c.model_path);
  r.get(model, "model", "matrix_set", c.matrix_set);
  r.get(model, "model", "cache_dir", c.cache_dir);
  if (c.model_path.empty()) fail("{}: [model] path is required (a GGUF file)", origin);
  if (c.matrix_set != "mlp" && c.matrix_set != "attn" && c.matrix_set != "all")
    fail("{}: [model] matrix_set must be mlp, attn or all, found '{}'", origin, c.matrix_set);

  const auto* store = r.section(root, "store", {"path", "fsync"});
  r.get(store, "store", "path", c.store_path);
  r.get(store, "store", "fsync", c.fsync_each_commit);

  const auto* http = r.section(root, "http", {"listen", "token", "token_env", "max_body_bytes",
                                              "read_timeout_s", "threads", "request_timeout_s"});
  std::string listen = "127.0.0.1:8080", token_env = "T2_TOKEN";
  r.get(http, "http", "listen", listen);
  r.get(http, "http", "token", c.token);
  r.get(http, "http", "token_env", token_env);
  r.get(http, "http", "max_body_bytes", c.max_body_bytes);
  r.get(http, "http", "read_timeout_s", c.read_timeout_s);
  r.get(http, "http", "threads", c.http_threads);
  r.get(http, "http", "request_timeout_s", c.request_timeout_s);
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos)
    fail("{}: [http] listen must be ADDRESS:PORT, found '{}'", origin, listen);
  c.listen_address = listen.substr(0, colon);
  try {
    const int port = std::stoi(listen.substr(colon + 1));
    if (port < 0 || port > 65535) throw std::out_of_range("port");
    c.listen_port = uint16_t(port);
  } catch (const std::exception&) {
    fail("{}: [http] listen port in '{}' is not 0..65535", origin, listen);
  }
  if (!c.token.empty()) {
    c.token_source = "[http] token";
  } else if (const char* env = std::getenv(token_env.c_str()); env && *env) {
    c.token = env;
    c.token_source = "$" + token_env;
  } else {
    fail("{}: no API token: set [http] token, or the environment variable {} ([http] "
         "token_env)", origin, token_env);
  }
  check_positive(double(c.max_body_bytes), origin, "[http] max_body_bytes");
  check_positive(c.read_timeout_s, origin, "[http] read_timeout_s");
  check_positive(c.request_timeout_s, origin, "[http] request_timeout_s");
  if (c.http_threads < 1 || c.http_threads > 64)
    fail("{}: [http] threads must be 1..64, found {}", origin, c.http_threads);

  const auto* tasks = r.section(root, "tasks", {"dir", "data_root", "enabled"});
  r.get(tasks, "tasks", "dir", c.tasks_dir);
  r.get(tasks, "tasks", "data_root", c.data_root);
  if (tasks && tasks->get("enabled")) {
    const toml::array* list = tasks->get("enabled")->as_array();
    if (!list) fail("{}: [tasks] enabled must be an array of task names", origin);
    for (const auto& item : *list) {
      auto name = item.value<std::string>();
      if (!name) fail("{}: [tasks] enabled must hold strings", origin);
      c.tasks.push_back(*name);
    }
  }

  if (const toml::node* experts = root.get("experts")) {
    const toml::array* list = experts->as_array();
    if (!list) fail("{}: experts must be an array of tables ([[experts]])", origin);
    for (const auto& item : *list) {
      const toml::table* t = item.as_table();
      if (!t) fail("{}: each [[experts]] entry must be a table", origin);
      ExpertFile e;
      for (const auto& [key, value] : *t)
        if (key.str() != "name" && key.str() != "file")
          fail("{}: unknown key '{}' in [[experts]]; known: name, file", origin, key.str());
      r.get(t, "experts", "name", e.name);
      r.get(t, "experts", "file", e.file);
      if (e.name.empty() || e.file.empty())
        fail("{}: every [[experts]] entry needs a name and a file", origin);
      c.experts.push_back(e);
    }
  }

  const auto* worker = r.section(root, "worker", {"threads", "batch_size", "heartbeat_s",
                                                  "lost_after_s"});
  r.get(worker, "worker", "threads", c.worker_threads);
  r.get(worker, "worker", "batch_size", c.batch_size);
  r.get(worker, "worker", "heartbeat_s", c.heartbeat_s);
  r.get(worker, "worker", "lost_after_s", c.lost_after_s);
  if (c.worker_threads < 1) fail("{}: [worker] threads must be at least 1", origin);
  if (c.batch_size < 1 || c.batch_size > 256)
    fail("{}: [worker] batch_size must be 1..256, found {}", origin, c.batch_size);
  check_positive(c.heartbeat_s, origin, "[worker] heartbeat_s");
  if (c.lost_after_s < 3 * c.heartbeat_s)
    fail("{}: [worker] lost_after_s ({}) must be at least 3 heartbeats ({} s)", origin,
         c.lost_after_s, 3 * c.heartbeat_s);

  const auto* train = r.section(root, "train", {"checkpoint_every"});
  r.get(train, "train", "checkpoint_every", c.checkpoint_every);
  if (c.checkpoint_every < 1) fail("{}: [train] checkpoint_every must be at least 1", origin);

  const auto* sched = r.section(root, "scheduler", {"max_shard_batch", "min_shard_seconds",
                                                    "drain_timeout_s"});
  r.get(sched, "scheduler", "max_shard_batch", c.max_shard_batch);
  r.get(sched, "scheduler", "min_shard_seconds", c.min_shard_seconds);
  r.get(sched, "scheduler", "drain_timeout_s", c.drain_timeout_s);
  if (c.max_shard_batch < 1) fail("{}: [scheduler] max_shard_batch must be at least 1", origin);
  check_positive(c.drain_timeout_s, origin, "[scheduler] drain_timeout_s");
  return c;
}

ServiceConfig load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot read config {}: does the file exist? (configs/local.toml is the "
                "example)", path);
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path);
}

std::vector<std::string> describe(const ServiceConfig& c) {
  std::vector<std::pair<std::string, std::string>> rows = {
      {"config", c.origin},
      {"model", c.model_path},
      {"matrix set", c.matrix_set},
      {"svd cache", c.cache_dir.empty() ? "(default)" : c.cache_dir},
      {"store", c.store_path + (c.fsync_each_commit ? " (fsync each commit)" : "")},
      {"listen", fmt::format("http://{}:{}", c.listen_address, c.listen_port)},
      {"token", fmt::format("{}*** from {}", c.token.substr(0, 2), c.token_source)},
      {"limits", fmt::format("body {} B, read {} s, sync requests {} s, {} http threads",
                             c.max_body_bytes, c.read_timeout_s, c.request_timeout_s,
                             c.http_threads)},
      {"tasks", c.tasks.empty() ? "(all in tasks dir)" : fmt::format("{}", fmt::join(c.tasks, ", "))},
      {"tasks dir", c.tasks_dir.empty() ? "(default)" : c.tasks_dir},
      {"data root", c.data_root.empty() ? "(default)" : c.data_root},
      {"experts", fmt::format("{} file(s)", c.experts.size())},
      {"workers", fmt::format("{} threads, batch {}, heartbeat {} s, lost after {} s",
                              c.worker_threads, c.batch_size, c.heartbeat_s, c.lost_after_s)},
      {"training", fmt::format("checkpoint every {} steps", c.checkpoint_every)},
      {"scheduler", fmt::format("shards up to {} requests, >= {} s; drain {} s",
                                c.max_shard_batch, c.min_shard_seconds, c.drain_timeout_s)},
  };
  std::vector<std::string> out;
  for (const auto& [k, v] : rows) out.push_back(fmt::format("{:<11} {}", k, v));
  return out;
}

}  // namespace t2::coordinator
