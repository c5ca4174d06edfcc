// Jobs over HTTP: submission (stored durably, idempotent by submission_id),
// listing, status with progress and result, cancel, the event log (long-poll)
// and per-request results.
#include <fmt/format.h>

#include <algorithm>

#include "coordinator/api.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::coordinator {

using nlohmann::json;

namespace {

json opt_time(const std::optional<store::Timestamp>& t) {
  return t ? json(store::format_time(*t)) : json();
}

}  // namespace

json Api::job_result(const store::Job& job) {
  if (!store::is_terminal(job.state)) return nullptr;
  {
    std::lock_guard lock(results_mutex_);
    auto it = results_.find(job.id);
    if (it != results_.end()) return it->second;
  }
  // The last "result" event; a finished job's events never change again.
  json result;
  int64_t after = 0;
  for (;;) {
    const auto events = store_.job_events(job.id, after, 1000);
    if (events.empty()) break;
    for (const auto& e : events) {
      after = e.seq;
      if (e.kind == "result") result = e.payload;
    }
  }
  std::lock_guard lock(results_mutex_);
  results_[job.id] = result;
  return result;
}

json Api::job_json(const store::Job& job) {
  json j = {{"id", job.id},
            {"type", store::to_string(job.type)},
            {"state", store::to_string(job.state)},
            {"priority", job.priority},
            {"submission_id", job.submission_id ? json(*job.submission_id) : json()},
            {"spec", job.spec},
            {"created", store::format_time(job.created)},
            {"updated", store::format_time(job.updated)},
            {"started", opt_time(job.started)},
            {"finished", opt_time(job.finished)},
            {"attempts", job.attempts},
            {"error", job.error.empty() ? json() : json(job.error)}};
  json progress = engine_.progress(job.id);
  if (progress.is_null())
    progress = {{"fraction", job.state == store::JobState::succeeded ? 1.0 : 0.0},
                {"phase", store::to_string(job.state)}};
  j["progress"] = progress;
  j["result"] = job_result(job);
  return j;
}

HttpResponse Api::submit_job(const HttpRequest& req) {
  const json body = parse_body(req);
  for (const auto& [key, value] : body.items())
    if (key != "type" && key != "spec" && key != "priority" && key != "submission_id")
      throw ApiError{400, "invalid_request",
                     fmt::format("unknown field '{}'; a job is {{\"type\", \"spec\", "
                                 "\"priority\", \"submission_id\"}}", key)};
  if (!body.contains("type") || !body["type"].is_string())
    throw ApiError{400, "invalid_request",
                   "field 'type' is required: train, evaluate, generate or fewshot"};
  store::JobType type;
  try {
    type = store::job_type_from(body["type"].get<std::string>());
  } catch (const Error& e) {
    throw ApiError{400, "unknown_job_type", e.what()};
  }
  if (!body.contains("spec") || !body["spec"].is_object())
    throw ApiError{400, "invalid_request", "field 'spec' is required: a JSON object"};
  int priority = 0;
  if (body.contains("priority")) {
    if (!body["priority"].is_number_integer())
      throw ApiError{400, "invalid_request", "field 'priority' must be an integer"};
    const int64_t p = body["priority"].get<int64_t>();
    if (p < -100 || p > 100)
      throw ApiError{400, "invalid_request", "field 'priority' must be in -100..100"};
    priority = int(p);
  }
  std::optional<std::string> submission_id;
  if (body.contains("submission_id")) {
    if (!body["submission_id"].is_string() || body["submission_id"].get<std::string>().empty() ||
        body["submission_id"].get<std::string>().size() > 128)
      throw ApiError{400, "invalid_request",
                     "field 'submission_id' must be a string of 1 to 128 bytes"};
    submission_id = body["submission_id"].get<std::string>();
  }

  // Seen before: the same job again, whatever its spec would say today.
  if (submission_id) {
    if (auto existing = store_.find_job(*submission_id)) {
      if (existing->type != type)
        throw ApiError{409, "conflict",
                       fmt::format("submission_id '{}' belongs to job {} of type {}",
                                   *submission_id, existing->id,
                                   store::to_string(existing->type))};
      return json_response(200, {{"job", job_json(*existing)}, {"created", false}});
    }
  }
  if (!engine_.accepting())
    throw ApiError{503, "shutting_down", "the service is draining; submit after it restarts"};

  SpecContext ctx;
  ctx.tasks = &tasks_;
  ctx.expert_exists = [this](const std::string& n) { return engine_.expert_exists(n); };
  ctx.default_checkpoint_every = config_.checkpoint_every;
  PreparedJob prepared;
  try {
    prepared = prepare_job(type, body["spec"], ctx);
  } catch (const Error& e) {
    throw ApiError{400, "invalid_spec", e.what()};
  }
  store::NewJob job;
  job.type = type;
  job.spec = prepared.spec;
  job.priority = priority;
  job.submission_id = submission_id;
  // Durable before the answer: a job the client hears of survives a crash.
  const store::SubmitResult stored = store_.submit_job(job);
  if (stored.created) engine_.submitted(stored.job, std::move(prepared));
  HttpResponse r = json_response(stored.created ? 202 : 200,
                                 {{"job", job_json(stored.job)}, {"created", stored.created}});
  r.headers.emplace_back("Location", fmt::format("/v1/jobs/{}", stored.job.id));
  return r;
}

HttpResponse Api::list_jobs(const Query& q) {
  std::optional<store::JobState> state;
  int limit = 50;
  store::JobId before = 0;
  for (const auto& [k, v] : q) {
    if (k == "state") {
      try {
        state = store::job_state_from(v);
      } catch (const Error& e) {
        throw ApiError{400, "invalid_query", e.what()};
      }
    } else if (k == "limit") {
      limit = int(std::clamp<int64_t>(parse_id(v, "limit"), 1, 1000));
    } else if (k == "before") {
      before = parse_id(v, "before");
    } else {
      throw ApiError{400, "invalid_query",
                     fmt::format("unknown parameter '{}'; known: state, limit, before", k)};
    }
  }
  json list = json::array();
  const auto jobs = store_.list_jobs(state, limit, before);
  for (const auto& j : jobs) list.push_back(job_json(j));
  json out = {{"jobs", list}, {"next_before", nullptr}};
  if (int(jobs.size()) == limit) out["next_before"] = jobs.back().id;
  return json_response(200, out);
}

HttpResponse Api::get_job(store::JobId id) {
  const auto job = store_.get_job(id);
  if (!job) throw ApiError{404, "not_found", fmt::format("no job {}", id)};
  return json_response(200, job_json(*job));
}

void Api::cancel_job(store::JobId id, HttpReply reply) {
  const auto job = store_.get_job(id);
  if (!job) throw ApiError{404, "not_found", fmt::format("no job {}", id)};
  if (store::is_terminal(job->state))
    throw ApiError{409, "conflict", fmt::format("job {} is already {}", id,
                                                store::to_string(job->state))};
  engine_.cancel(id, [this, id, reply](json outcome) {
    const unsigned status = outcome.value("status", 500u);
    if (status != 200) {
      reply(error_response(status, outcome.value("code", std::string("internal")),
                           outcome.value("message", std::string("cancel failed"))));
      return;
    }
    try {
      const auto now = store_.get_job(id);
      reply(json_response(200, {{"job", job_json(*now)}}));
    } catch (const std::exception& e) {
      reply(error_response(500, "internal", e.what()));
    }
  });
}

// ---- events (long-poll) -----------------------------------------------------------

void Api::job_events(store::JobId id, const Query& q, HttpReply reply) {
  Poll poll;
  poll.job = id;
  double wait = 0;
  for (const auto& [k, v] : q) {
    if (k == "after") poll.after = parse_id(v, "after");
    else if (k == "limit") poll.limit = int(std::clamp<int64_t>(parse_id(v, "limit"), 1, 1000));
    else if (k == "wait") wait = std::min<double>(30, double(parse_id(v, "wait")));
    else throw ApiError{400, "invalid_query",
                        fmt::format("unknown parameter '{}'; known: after, limit, wait", k)};
  }
  if (!store_.get_job(id)) throw ApiError{404, "not_found", fmt::format("no job {}", id)};
  poll.deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(int64_t(wait * 1000));
  poll.reply = std::move(reply);
  if (answer_poll(poll, wait <= 0)) return;
  std::lock_guard lock(poll_mutex_);
  polls_.push_back(std::move(poll));
  poll_cv_.notify_all();
}

// Answers when there are events (or the job is over, or `final`); false to wait.
bool Api::answer_poll(Poll& poll, bool final) {
  const auto events = store_.job_events(poll.job, poll.after, poll.limit);
  const auto job = store_.get_job(poll.job);
  const bool over = !job || store::is_terminal(job->state);
  if (events.empty() && !over && !final) return false;
  json list = json::array();
  int64_t last = poll.after;
  for (const auto& e : events) {
    list.push_back({{"seq", e.seq}, {"time", store::format_time(e.time)}, {"kind", e.kind},
                    {"payload", e.payload}});
    last = e.seq;
  }
  poll.reply(json_response(200, {{"job", poll.job},
                                 {"state", job ? json(store::to_string(job->state)) : json()},
                                 {"events", list}, {"next_after", last}}));
  return true;
}

void Api::poller() {
  std::unique_lock lock(poll_mutex_);
  while (!stopping_) {
    poll_cv_.wait_for(lock, std::chrono::milliseconds(200));
    std::vector<Poll> waiting;
    waiting.swap(polls_);
    lock.unlock();
    std::vector<Poll> keep;
    const auto now = std::chrono::steady_clock::now();
    for (Poll& p : waiting) {
      try {
        if (!answer_poll(p, now >= p.deadline)) keep.push_back(std::move(p));
      } catch (const std::exception& e) {
        p.reply(error_response(500, "internal", e.what()));
      }
    }
    lock.lock();
    for (Poll& p : keep) polls_.push_back(std::move(p));
  }
  for (Poll& p : polls_)
    p.reply(error_response(503, "shutting_down", "the service is stopping"));
}

// ---- results ------------------------------------------------------------------------

HttpResponse Api::job_results(store::JobId id, const Query& q) {
  int64_t offset = 0, limit = 100;
  for (const auto& [k, v] : q) {
    if (k == "offset") offset = parse_id(v, "offset");
    else if (k == "limit") limit = std::clamp<int64_t>(parse_id(v, "limit"), 1, 1000);
    else throw ApiError{400, "invalid_query",
                        fmt::format("unknown parameter '{}'; known: offset, limit", k)};
  }
  const auto job = store_.get_job(id);
  if (!job) throw ApiError{404, "not_found", fmt::format("no job {}", id)};
  std::vector<json> items, steps;
  int64_t after = 0;
  for (;;) {
    const auto events = store_.job_events(id, after, 1000);
    if (events.empty()) break;
    for (const auto& e : events) {
      after = e.seq;
      if (e.kind == "shard")
        for (const auto& item : e.payload.value("items", json::array())) items.push_back(item);
      else if (e.kind == "step")
        steps.push_back(e.payload);
    }
  }
  std::sort(items.begin(), items.end(), [](const json& a, const json& b) {
    return a.value("i", 0) < b.value("i", 0);
  });
  json page = json::array();
  for (int64_t k = offset; k < int64_t(items.size()) && k < offset + limit; ++k)
    page.push_back(items[size_t(k)]);
  json out = {{"job", id}, {"state", store::to_string(job->state)}, {"total", items.size()},
              {"items", page}};
  if (job->type == store::JobType::train) out["steps"] = steps;
  return json_response(200, out);
}

}  // namespace t2::coordinator
