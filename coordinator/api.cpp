// Api: routing, authentication, error mapping, and the read-only endpoints
// (experts, decisions, health, metrics). Jobs are in api_jobs.cpp, synchronous
// generation in api_generate.cpp.
#include "coordinator/api.h"

#include <fmt/format.h>

#include <charconv>

#include "store/export.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::coordinator {

using nlohmann::json;

int64_t parse_id(const std::string& text, const char* what) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0)
    throw ApiError{400, "invalid_request", fmt::format("{} must be a non-negative integer, "
                                                       "found '{}'", what, text)};
  return v;
}

json parse_body(const HttpRequest& req) {
  // The body is read as JSON whatever Content-Type says (curl -d sends a form
  // type); what is not JSON is refused below.
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded())
    throw ApiError{400, "invalid_json", "the request body is not valid JSON"};
  if (!body.is_object())
    throw ApiError{400, "invalid_request",
                   fmt::format("the request body must be a JSON object, found {}",
                               body.type_name())};
  return body;
}

Api::Api(const ServiceConfig& config, store::Store& store, Engine& engine,
         const TaskCatalog& tasks)
    : config_(config), store_(store), engine_(engine), tasks_(tasks) {
  poll_thread_ = std::thread([this] { poller(); });
}

Api::~Api() {
  {
    std::lock_guard lock(poll_mutex_);
    stopping_ = true;
  }
  poll_cv_.notify_all();
  poll_thread_.join();
}

bool Api::authorized(const HttpRequest& req) const {
  const std::string_view prefix = "Bearer ";
  std::string_view got = req.authorization;
  if (got.substr(0, prefix.size()) != prefix) return false;
  got.remove_prefix(prefix.size());
  // Constant time in the token's length: no early exit on the first mismatch.
  const std::string& want = config_.token;
  unsigned diff = unsigned(got.size() != want.size());
  for (size_t i = 0; i < want.size(); ++i)
    diff |= unsigned(uint8_t(i < got.size() ? got[i] : 0) ^ uint8_t(want[i]));
  return diff == 0;
}

void Api::handle(HttpRequest&& req, HttpReply reply) {
  auto log = log::get("coord");
  bool deferred = false;
  HttpResponse res;
  try {
    res = route(req, reply, deferred);
  } catch (const ApiError& e) {
    res = error_response(e.status, e.code, e.message);
  } catch (const Error& e) {
    res = error_response(400, "invalid_request", e.what());
  } catch (const std::exception& e) {
    log->error("{} {}: {}", req.method, req.path, e.what());
    res = error_response(500, "internal", "internal error; see the coordinator log");
  }
  if (!deferred) reply(std::move(res));
}

HttpResponse Api::route(HttpRequest& req, HttpReply& reply, bool& deferred) {
  const std::string& m = req.method;
  const std::string& path = req.path;
  auto method_not_allowed = [&](const char* allow) {
    HttpResponse r = error_response(405, "method_not_allowed",
                                    fmt::format("{} does not take {}; use {}", path, m, allow));
    r.headers.emplace_back("Allow", allow);
    return r;
  };

  if (path == "/v1/health" || path == "/health") {
    if (m != "GET") return method_not_allowed("GET");
    return health();
  }
  if (!authorized(req)) {
    HttpResponse r = error_response(
        401, "unauthorized",
        req.authorization.empty() ? "missing bearer token: send Authorization: Bearer <token>"
                                  : "invalid bearer token");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"t2\"");
    return r;
  }

  // Split "/v1/jobs/12/cancel" into segments.
  std::vector<std::string> seg;
  for (size_t i = 1; i <= path.size();) {
    const size_t j = path.find('/', i);
    seg.push_back(path.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  if (!seg.empty() && seg.back().empty()) seg.pop_back();  // trailing slash

  if (path == "/metrics") {
    if (m != "GET") return method_not_allowed("GET");
    return metrics();
  }
  if (seg.size() >= 2 && seg[0] == "v1") {
    const std::string& what = seg[1];
    if (what == "jobs" && seg.size() == 2) {
      if (m == "POST") return submit_job(req);
      if (m == "GET") return list_jobs(req.query);
      return method_not_allowed("GET, POST");
    }
    if (what == "jobs" && seg.size() >= 3 && seg.size() <= 4) {
      const auto id = store::JobId(parse_id(seg[2], "job id"));
      const std::string sub = seg.size() == 4 ? seg[3] : "";
      if (sub.empty()) {
        if (m != "GET") return method_not_allowed("GET");
        return get_job(id);
      }
      if (sub == "cancel") {
        if (m != "POST") return method_not_allowed("POST");
        cancel_job(id, reply);
        deferred = true;  // only once it did not throw: errors are answered here
        return {};
      }
      if (sub == "events") {
        if (m != "GET") return method_not_allowed("GET");
        job_events(id, req.query, reply);
        deferred = true;  // only once it did not throw: errors are answered here
        return {};
      }
      if (sub == "results") {
        if (m != "GET") return method_not_allowed("GET");
        return job_results(id, req.query);
      }
    }
    if (what == "experts" && seg.size() <= 3) {
      if (m != "GET") return method_not_allowed("GET");
      return seg.size() == 2 ? list_experts(req.query) : get_expert(seg[2]);
    }
    if (what == "decisions" && seg.size() <= 3) {
      if (m != "GET") return method_not_allowed("GET");
      return seg.size() == 2 ? decisions(req.query) : decision(parse_id(seg[2], "decision id"));
    }
    if (what == "generate" && seg.size() == 2) {
      if (m != "POST") return method_not_allowed("POST");
      generate(req, reply);
      deferred = true;
      return {};
    }
    if (what == "chat" && seg.size() == 3 && seg[2] == "completions") {
      if (m != "POST") return method_not_allowed("POST");
      chat(req, reply);
      deferred = true;
      return {};
    }
    if (what == "models" && seg.size() == 2) {
      if (m != "GET") return method_not_allowed("GET");
      return models();
    }
  }
  return error_response(404, "not_found", fmt::format("no such endpoint: {} {}", m, path));
}

// ---- experts ---------------------------------------------------------------------

namespace {

json expert_json(const store::Expert& x) {
  json j = {{"name", x.name},
            {"task", x.task},
            {"base_model_sha256", x.base_model_hash},
            {"matrix_set", x.matrix_set},
            {"values", x.vector_bytes / 4},
            {"created", store::format_time(x.created)},
            {"validation_accuracy", nullptr},
            {"source_job", nullptr}};
  if (x.validation_accuracy) j["validation_accuracy"] = *x.validation_accuracy;
  if (x.source_job) j["source_job"] = *x.source_job;
  if (x.file_path) j["file"] = *x.file_path;
  return j;
}

}  // namespace

HttpResponse Api::list_experts(const Query& q) {
  std::optional<std::string> task;
  for (const auto& [k, v] : q) {
    if (k == "task") task = v;
    else throw ApiError{400, "invalid_query", fmt::format("unknown parameter '{}'; known: task", k)};
  }
  json list = json::array();
  for (const auto& x : store_.list_experts(task)) list.push_back(expert_json(x));
  return json_response(200, {{"experts", list}});
}

HttpResponse Api::get_expert(const std::string& name) {
  auto x = store_.get_expert(name);
  if (!x) throw ApiError{404, "not_found", fmt::format("no expert '{}'", name)};
  x->vector_bytes = int64_t(x->vector.size());
  return json_response(200, expert_json(*x));
}

// ---- decisions -------------------------------------------------------------------

HttpResponse Api::decisions(const Query& q) {
  store::AuditRequest request;
  try {
    request = store::parse_audit_request(q, store::now());
  } catch (const Error& e) {
    throw ApiError{400, "invalid_query", e.what()};
  }
  if (!request.group_by.empty())
    return json_response(200, store::to_json(store_.aggregate_decisions(request.group_by,
                                                                        request.filter)));
  const store::DecisionPage page = store_.query_decisions(request.filter, request.page);
  json rows = json::array();
  for (const auto& d : page.rows) rows.push_back(store::to_json(d));
  json out = {{"decisions", rows}, {"next_cursor", nullptr}};
  if (!page.next_cursor.empty()) out["next_cursor"] = page.next_cursor;
  return json_response(200, out);
}

HttpResponse Api::decision(int64_t id) {
  const auto d = store_.audit().get(id);
  if (!d) throw ApiError{404, "not_found", fmt::format("no decision {}", id)};
  return json_response(200, store::to_json(*d));
}

// ---- health and metrics ------------------------------------------------------------

HttpResponse Api::health() {
  json h = engine_.health();
  const auto stats = store_.stats();
  h["store"] = {{"path", store_.path()}, {"queued_writes", stats.queued},
                {"failed_writes", stats.ops_failed}};
  if (!stats.last_error.empty()) h["store"]["last_error"] = stats.last_error;
  return json_response(h["status"] == "down" ? 503 : 200, h);
}

HttpResponse Api::metrics() {
  std::string text = engine_.metrics_text();
  if (http_) {
    text += "# HELP t2_http_requests_total HTTP requests answered, by status class.\n"
            "# TYPE t2_http_requests_total counter\n";
    text += fmt::format("t2_http_requests_total{{code=\"2xx\"}} {}\n", http_->status_2xx.load());
    text += fmt::format("t2_http_requests_total{{code=\"4xx\"}} {}\n", http_->status_4xx.load());
    text += fmt::format("t2_http_requests_total{{code=\"5xx\"}} {}\n", http_->status_5xx.load());
    text += "# HELP t2_http_connections Open HTTP connections.\n"
            "# TYPE t2_http_connections gauge\n";
    text += fmt::format("t2_http_connections {}\n", http_->connections.load());
  }
  const auto stats = store_.stats();
  text += "# HELP t2_store_queued_writes Store writes queued behind the writer.\n"
          "# TYPE t2_store_queued_writes gauge\n";
  text += fmt::format("t2_store_queued_writes {}\n", stats.queued);
  text += "# HELP t2_store_transactions_total Store transactions committed.\n"
          "# TYPE t2_store_transactions_total counter\n";
  text += fmt::format("t2_store_transactions_total {}\n", stats.transactions);
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = std::move(text);
  return r;
}

HttpResponse Api::models() {
  json data = json::array();
  data.push_back({{"id", kModelAuto}, {"object", "model"}, {"owned_by", "t2"},
                  {"description", "two-pass: the first pass picks the expert"}});
  data.push_back({{"id", kModelBase}, {"object", "model"}, {"owned_by", "t2"},
                  {"description", "the backbone without an expert"}});
  for (const auto& x : store_.list_experts())
    data.push_back({{"id", x.name}, {"object", "model"}, {"owned_by", "t2"},
                    {"description", "SVF expert for " + x.task}});
  return json_response(200, {{"object", "list"}, {"data", data}});
}

}  // namespace t2::coordinator
