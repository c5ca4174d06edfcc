// coordinator::Api — t2's HTTP API v1 (DESIGN.md §5) on top of HttpServer:
// routing, the bearer token, JSON parsing, and the mapping of every failure to
// the one error shape. Reads go to the store directly; anything that changes a
// job goes through the Engine, and a job is in the store before a client
// hears "accepted". Long polls wait on the Api's own timer thread, never on an
// I/O thread.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "coordinator/config.h"
#include "coordinator/engine.h"
#include "coordinator/http_server.h"
#include "coordinator/job_spec.h"
#include "store/store.h"

namespace t2::coordinator {

// Thrown inside handlers; becomes {"error": {"code", "message"}} with `status`.
struct ApiError {
  unsigned status = 400;
  std::string code;
  std::string message;
};

class Api {
 public:
  Api(const ServiceConfig& config, store::Store& store, Engine& engine,
      const TaskCatalog& tasks);
  ~Api();

  // The HttpHandler.
  void handle(HttpRequest&& request, HttpReply reply);
  void set_http_counters(const HttpCounters* counters) { http_ = counters; }

 private:
  using Query = std::vector<std::pair<std::string, std::string>>;

  HttpResponse route(HttpRequest& req, HttpReply& reply, bool& deferred);
  bool authorized(const HttpRequest& req) const;

  // Jobs.
  HttpResponse submit_job(const HttpRequest& req);
  HttpResponse list_jobs(const Query& q);
  HttpResponse get_job(store::JobId id);
  void cancel_job(store::JobId id, HttpReply reply);
  void job_events(store::JobId id, const Query& q, HttpReply reply);
  HttpResponse job_results(store::JobId id, const Query& q);
  nlohmann::json job_json(const store::Job& job);
  nlohmann::json job_result(const store::Job& job);

  // Experts, decisions, health, metrics.
  HttpResponse list_experts(const Query& q);
  HttpResponse get_expert(const std::string& name);
  HttpResponse decisions(const Query& q);
  HttpResponse decision(int64_t id);
  HttpResponse health();
  HttpResponse metrics();
  HttpResponse models();

  // Synchronous generation.
  void generate(const HttpRequest& req, HttpReply reply);
  void chat(const HttpRequest& req, HttpReply reply);

  // Long polls: answered by the poller thread when events arrive or time runs out.
  struct Poll {
    store::JobId job = 0;
    int64_t after = 0;
    int limit = 100;
    std::chrono::steady_clock::time_point deadline;
    HttpReply reply;
  };
  void poller();
  bool answer_poll(Poll& poll, bool final);

  const ServiceConfig& config_;
  store::Store& store_;
  Engine& engine_;
  const TaskCatalog& tasks_;
  const HttpCounters* http_ = nullptr;

  std::mutex results_mutex_;
  std::unordered_map<store::JobId, nlohmann::json> results_;  // of terminal jobs

  std::mutex poll_mutex_;
  std::condition_variable poll_cv_;
  std::vector<Poll> polls_;
  bool stopping_ = false;
  std::thread poll_thread_;
};

// Integer path segment or query value; throws ApiError(400) naming `what`.
int64_t parse_id(const std::string& text, const char* what);
// The body as a JSON object; throws ApiError(400 invalid_json) otherwise.
nlohmann::json parse_body(const HttpRequest& req);

}  // namespace t2::coordinator
