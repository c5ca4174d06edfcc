// Synchronous generation: POST /v1/generate (a few prompts) and the OpenAI-
// compatible POST /v1/chat/completions. Both run as a high-priority job the
// engine does not store; each request still gets its decision row.
#include <fmt/format.h>

#include <chrono>
#include <random>

#include "coordinator/api.h"
#include "t2/error.h"

namespace t2::coordinator {

using nlohmann::json;

namespace {

constexpr size_t kMaxSyncPrompts = 16;

std::string new_request_id() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          uint64_t(std::chrono::steady_clock::now()
                                                       .time_since_epoch().count()));
  return fmt::format("req-{:016x}", rng());
}

// A sync reply from the engine: either {"results": [...]} or {"error": {...}}.
bool reply_error(const json& out, const HttpReply& reply) {
  if (!out.contains("error")) return false;
  const json& e = out["error"];
  reply(error_response(e.value("status", 500u), e.value("code", std::string("internal")),
                       e.value("message", std::string("generation failed"))));
  return true;
}

int int_field(const json& body, const char* key, int fallback, int low, int high) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (!body[key].is_number_integer())
    throw ApiError{400, "invalid_request", fmt::format("field '{}' must be an integer", key)};
  const int64_t v = body[key].get<int64_t>();
  if (v < low || v > high)
    throw ApiError{400, "invalid_request", fmt::format("field '{}' must be in {}..{}", key, low,
                                                       high)};
  return int(v);
}

double number_field(const json& body, const char* key, double fallback, double low,
                    double high) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (!body[key].is_number())
    throw ApiError{400, "invalid_request", fmt::format("field '{}' must be a number", key)};
  const double v = body[key].get<double>();
  if (!(v >= low && v <= high))
    throw ApiError{400, "invalid_request", fmt::format("field '{}' must be in [{}, {}]", key,
                                                       low, high)};
  return v;
}

std::string model_field(const json& body, const Engine& engine, bool required) {
  if (!body.contains("model")) {
    if (required) throw ApiError{400, "invalid_request", "field 'model' is required"};
    return kModelBase;
  }
  if (!body["model"].is_string())
    throw ApiError{400, "invalid_request", "field 'model' must be a string"};
  std::string model = body["model"].get<std::string>();
  if (model == "auto") model = kModelAuto;
  if (model != kModelAuto && model != kModelBase && !engine.expert_exists(model))
    throw ApiError{404, "model_not_found",
                   fmt::format("model '{}' is not '{}', '{}' or a registered expert (GET "
                               "/v1/models)", model, kModelAuto, kModelBase)};
  return model;
}

}  // namespace

void Api::generate(const HttpRequest& req, HttpReply reply) {
  const json body = parse_body(req);
  for (const auto& [key, value] : body.items())
    if (key != "prompt" && key != "prompts" && key != "model" && key != "max_tokens" &&
        key != "temperature" && key != "seed" && key != "chat")
      throw ApiError{400, "invalid_request",
                     fmt::format("unknown field '{}'; known: prompt, prompts, model, max_tokens, "
                                 "temperature, seed, chat", key)};
  SyncRequest r;
  if (body.contains("prompt") == body.contains("prompts"))
    throw ApiError{400, "invalid_request", "give exactly one of 'prompt' (a string) or "
                                           "'prompts' (an array of strings)"};
  const json prompts = body.contains("prompt") ? json::array({body["prompt"]}) : body["prompts"];
  if (!prompts.is_array() || prompts.empty() || prompts.size() > kMaxSyncPrompts)
    throw ApiError{400, "invalid_request",
                   fmt::format("'prompts' must be an array of 1 to {} strings", kMaxSyncPrompts)};
  for (const auto& p : prompts) {
    if (!p.is_string() || p.get<std::string>().empty())
      throw ApiError{400, "invalid_request", "every prompt must be a non-empty string"};
    r.prompts.push_back(p.get<std::string>());
  }
  r.model = model_field(body, engine_, false);
  r.max_tokens = int_field(body, "max_tokens", 128, 1, 2048);
  r.temperature = number_field(body, "temperature", 0.0, 0.0, 2.0);
  r.seed = uint64_t(int_field(body, "seed", 0, 0, INT32_MAX));
  if (body.contains("chat")) {
    if (!body["chat"].is_boolean())
      throw ApiError{400, "invalid_request", "field 'chat' must be true or false"};
    r.chat = body["chat"].get<bool>();
  }
  r.request_id = new_request_id();
  const std::string id = r.request_id, model = r.model;
  engine_.run_sync(std::move(r), [reply, id, model](json out) {
    if (reply_error(out, reply)) return;
    json results = json::array();
    for (const auto& item : out["results"])
      results.push_back({{"text", item.value("text", std::string())},
                         {"finish_reason", item.value("finish", std::string())},
                         {"prompt_tokens", item.value("prompt_tokens", 0)},
                         {"completion_tokens", item.value("completion_tokens", 0)},
                         {"decision_id", item.value("decision_id", json())},
                         {"decision", item.value("decision", json())}});
    reply(json_response(200, {{"id", id}, {"model", model}, {"results", results}}));
  });
}

void Api::chat(const HttpRequest& req, HttpReply reply) {
  const json body = parse_body(req);
  // OpenAI clients send many optional fields; those t2 does not use are ignored,
  // those that would change the answer and are not supported are refused.
  if (body.value("stream", false))
    throw ApiError{400, "unsupported",
                   "streaming is not supported yet; send \"stream\": false"};
  if (body.contains("n") && body["n"] != 1)
    throw ApiError{400, "unsupported", "only n = 1 is supported"};
  if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
    throw ApiError{400, "invalid_request", "field 'messages' is required: a non-empty array"};
  json messages = json::array();
  for (size_t i = 0; i < body["messages"].size(); ++i) {
    const json& m = body["messages"][i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() ||
        !m.contains("content") || !m["content"].is_string())
      throw ApiError{400, "invalid_request",
                     fmt::format("messages[{}] must be {{\"role\": string, \"content\": string}}",
                                 i)};
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant")
      throw ApiError{400, "invalid_request",
                     fmt::format("messages[{}].role must be system, user or assistant", i)};
    messages.push_back({{"role", role}, {"content", m["content"]}});
  }
  SyncRequest r;
  r.model = model_field(body, engine_, true);
  r.max_tokens = int_field(body, "max_completion_tokens",
                           int_field(body, "max_tokens", 256, 1, 2048), 1, 2048);
  r.temperature = number_field(body, "temperature", 0.0, 0.0, 2.0);
  r.seed = uint64_t(int_field(body, "seed", 0, 0, INT32_MAX));
  r.messages.push_back(messages);
  r.request_id = new_request_id();
  const std::string id = r.request_id, model = body["model"].get<std::string>();
  engine_.run_sync(std::move(r), [reply, id, model](json out) {
    if (reply_error(out, reply)) return;
    const json item = out["results"].empty() ? json::object() : out["results"][0];
    const int prompt = item.value("prompt_tokens", 0), completion =
                                                           item.value("completion_tokens", 0);
    const std::string finish = item.value("finish", std::string("stop"));
    json response = {
        {"id", "chatcmpl-" + id},
        {"object", "chat.completion"},
        {"created", std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count()},
        {"model", model},
        {"choices", {{{"index", 0},
                      {"message", {{"role", "assistant"},
                                   {"content", item.value("text", std::string())}}},
                      {"finish_reason", finish == "length" ? "length" : "stop"}}}},
        {"usage", {{"prompt_tokens", prompt}, {"completion_tokens", completion},
                   {"total_tokens", prompt + completion}}},
        {"t2", {{"decision_id", item.value("decision_id", json())},
                {"decision", item.value("decision", json())}}}};
    reply(json_response(200, response));
  });
}

}  // namespace t2::coordinator
