// The client commands, over the HTTP API of a running `t2 serve`:
//   t2 submit JOB.json [--wait]   t2 jobs   t2 status ID   t2 cancel ID
//   t2 experts                    t2 decisions [filters]   (audit queries)
// Server and token come from --server / --token, else T2_SERVER / T2_TOKEN.
// A non-2xx answer becomes "t2: error: <code>: <message>" and exit status 1.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "commands.h"
#include "coordinator/http_client.h"
#include "coordinator/url.h"
#include "t2/error.h"

namespace t2::cli {
namespace {

using nlohmann::json;

struct ClientArgs {
  std::string server = coordinator::default_server();
  std::string token = coordinator::default_token();
  bool json_out = false;
};

void add_client_flags(CLI::App* cmd, ClientArgs& a) {
  cmd->add_option("--server", a.server, "Service address (default: T2_SERVER or "
                                        "http://127.0.0.1:8080)");
  cmd->add_option("--token", a.token, "Bearer token (default: T2_TOKEN)");
  cmd->add_flag("--json", a.json_out, "Print the API's JSON instead of a table");
}

// The answer's JSON, or t2::Error with the API's error code and message.
json call(coordinator::HttpClient& c, const std::string& method, const std::string& target,
          const std::string& body = "") {
  const auto r = c.request(method, target, body);
  json j = json::parse(r.body, nullptr, false);
  if (r.status >= 300) {
    if (!j.is_discarded() && j.contains("error"))
      fail("{} {}: {} {}: {}", method, target, r.status,
           j["error"].value("code", std::string("error")),
           j["error"].value("message", std::string()));
    fail("{} {}: HTTP {}: {}", method, target, r.status, r.body.substr(0, 200));
  }
  if (j.is_discarded()) fail("{} {}: the answer is not JSON", method, target);
  return j;
}

std::string cut(const std::string& s, size_t n) {
  return s.size() <= n ? s : s.substr(0, n - 1) + "~";
}

std::string progress_text(const json& job) {
  const json& p = job["progress"];
  if (!p.is_object()) return "";
  const double f = p.value("fraction", 0.0);
  std::string text = fmt::format("{:3.0f}%", 100 * f);
  if (p.contains("total"))
    text += fmt::format(" {}/{} {}", p.value("done", 0), p.value("total", 0),
                        p.value("unit", std::string()));
  return text;
}

void print_job_row(const json& j) {
  fmt::print("{:>5}  {:<9}  {:<10}  {:>3}  {:<24}  {:<16}  {}\n", j["id"].get<int64_t>(),
             j["type"].get<std::string>(), j["state"].get<std::string>(),
             j["attempts"].get<int>(), j["created"].get<std::string>().substr(0, 23),
             progress_text(j),
             j["error"].is_null() ? "" : cut(j["error"].get<std::string>(), 60));
}

// ---- submit ---------------------------------------------------------------------

struct SubmitArgs : ClientArgs {
  std::string file;
  std::string submission_id;
  bool wait = false;
  double poll_s = 0.5;
};

// One line redrawn in place: a bar, the counts, and the latest event.
void draw_bar(const json& job, const std::string& note, bool tty) {
  const json& p = job["progress"];
  const double f = p.is_object() ? p.value("fraction", 0.0) : 0.0;
  constexpr int kWidth = 30;
  const int filled = int(f * kWidth + 0.5);
  std::string bar(size_t(filled), '#');
  bar += std::string(size_t(kWidth - filled), '.');
  std::string line = fmt::format("job {} {:<9} [{}] {}", job["id"].get<int64_t>(),
                                 job["state"].get<std::string>(), bar, progress_text(job));
  if (p.is_object() && p.contains("eta_s") && job["state"] == "running")
    line += fmt::format("  eta {:.0f}s", p["eta_s"].get<double>());
  if (!note.empty()) line += "  " + note;
  if (tty) fmt::print(stderr, "\r\033[K{}", cut(line, 140));
  else fmt::print(stderr, "{}\n", line);
  std::fflush(stderr);
}

std::string event_note(const json& e) {
  const std::string kind = e.value("kind", std::string());
  const json& p = e["payload"];
  if (kind == "step")
    return fmt::format("step {}/{} reward {:+.2f} acc {:.2f}", p.value("step", 0),
                       p.value("steps", 0), p.value("reward", 0.0), p.value("accuracy", 0.0));
  if (kind == "rank_lost") return fmt::format("rank {} lost", p.value("rank", -1));
  if (kind == "checkpoint") return fmt::format("checkpoint at step {}", p.value("step", 0));
  if (kind == "resumed") return "resumed";
  return "";
}

void run_submit(const SubmitArgs& a) {
  std::ifstream in(a.file);
  if (!in) fail("cannot read {}", a.file);
  std::stringstream text;
  text << in.rdbuf();
  json job = json::parse(text.str(), nullptr, false);
  if (job.is_discarded() || !job.is_object())
    fail("{} is not a JSON object; a job is {{\"type\": ..., \"spec\": {{...}}}}", a.file);
  if (!a.submission_id.empty()) job["submission_id"] = a.submission_id;

  coordinator::HttpClient client(a.server, a.token);
  json answer = call(client, "POST", "/v1/jobs", job.dump());
  json current = answer["job"];
  const int64_t id = current["id"].get<int64_t>();
  fmt::print(stderr, "job {} {} ({})\n", id,
             answer.value("created", true) ? "accepted" : "already submitted",
             current["state"].get<std::string>());
  if (!a.wait) {
    fmt::print("{}\n", a.json_out ? current.dump(2) : std::to_string(id));
    return;
  }

  const bool tty = isatty(STDERR_FILENO);
  int64_t after = 0;
  std::string note;
  double last_line = 0;
  std::string last_said;
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    current = call(client, "GET", fmt::format("/v1/jobs/{}", id));
    const json events = call(client, "GET", fmt::format("/v1/jobs/{}/events?after={}", id, after));
    for (const auto& e : events["events"]) {
      const std::string n = event_note(e);
      if (!n.empty()) note = n;
    }
    after = events.value("next_after", after);
    const std::string state = current["state"].get<std::string>();
    const bool done = state == "succeeded" || state == "failed" || state == "cancelled";
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Without a terminal, a line when something changed (or every 60 s to show
    // it is alive), never a flood of identical lines.
    const std::string said = state + progress_text(current) + note;
    if (tty || done || (said != last_said && elapsed - last_line >= 2) ||
        elapsed - last_line >= 60) {
      draw_bar(current, note, tty);
      last_line = elapsed;
      last_said = said;
    }
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(a.poll_s * 1000)));
  }
  if (tty) fmt::print(stderr, "\n");
  const std::string state = current["state"].get<std::string>();
  if (a.json_out) fmt::print("{}\n", current.dump(2));
  else fmt::print("{}\n", current["result"].is_null() ? json{{"state", state}}.dump()
                                                      : current["result"].dump());
  if (state != "succeeded")
    fail("job {} {}{}", id, state,
         current["error"].is_null() ? "" : ": " + current["error"].get<std::string>());
}

// ---- jobs, status, cancel, experts ------------------------------------------------------

struct JobsArgs : ClientArgs {
  std::string state;
  int limit = 20;
};

void run_jobs(const JobsArgs& a) {
  coordinator::HttpClient client(a.server, a.token);
  std::string target = fmt::format("/v1/jobs?limit={}", a.limit);
  if (!a.state.empty()) target += "&state=" + coordinator::url_encode(a.state);
  const json out = call(client, "GET", target);
  if (a.json_out) {
    fmt::print("{}\n", out.dump(2));
    return;
  }
  fmt::print("{:>5}  {:<9}  {:<10}  {:>3}  {:<24}  {:<16}  {}\n", "id", "type", "state", "try",
             "created (UTC)", "progress", "error");
  for (const auto& j : out["jobs"]) print_job_row(j);
}

struct IdArgs : ClientArgs {
  int64_t id = 0;
};

void run_status(const IdArgs& a) {
  coordinator::HttpClient client(a.server, a.token);
  const json j = call(client, "GET", fmt::format("/v1/jobs/{}", a.id));
  if (a.json_out) {
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("job        {} ({}), priority {}\n", j["id"].get<int64_t>(),
             j["type"].get<std::string>(), j["priority"].get<int>());
  fmt::print("state      {} after {} attempt(s){}\n", j["state"].get<std::string>(),
             j["attempts"].get<int>(),
             j["error"].is_null() ? "" : ": " + j["error"].get<std::string>());
  fmt::print("progress   {}\n", progress_text(j));
  fmt::print("created    {}\n", j["created"].get<std::string>());
  if (!j["finished"].is_null()) fmt::print("finished   {}\n", j["finished"].get<std::string>());
  fmt::print("spec       {}\n", cut(j["spec"].dump(), 200));
  if (!j["result"].is_null()) fmt::print("result     {}\n", j["result"].dump());
}

void run_cancel(const IdArgs& a) {
  coordinator::HttpClient client(a.server, a.token);
  const json j = call(client, "POST", fmt::format("/v1/jobs/{}/cancel", a.id), "{}");
  fmt::print("job {} {}\n", a.id, j["job"]["state"].get<std::string>());
}

void run_experts(const ClientArgs& a) {
  coordinator::HttpClient client(a.server, a.token);
  const json out = call(client, "GET", "/v1/experts");
  if (a.json_out) {
    fmt::print("{}\n", out.dump(2));
    return;
  }
  fmt::print("{:<20}  {:<14}  {:<5}  {:>7}  {:>6}  {}\n", "name", "task", "set", "values", "job",
             "created (UTC)");
  for (const auto& x : out["experts"])
    fmt::print("{:<20}  {:<14}  {:<5}  {:>7}  {:>6}  {}\n", cut(x["name"], 20), cut(x["task"], 14),
               x["matrix_set"].get<std::string>(), x["values"].get<int64_t>(),
               x["source_job"].is_null() ? "-" : std::to_string(x["source_job"].get<int64_t>()),
               x["created"].get<std::string>().substr(0, 19));
}

// ---- decisions (audit over the API) --------------------------------------------------

struct DecisionsArgs : ClientArgs {
  std::vector<std::pair<std::string, CLI::Option*>> options;
  std::vector<std::string> values;
};

std::string experts_text(const json& d) {
  std::string out;
  for (const auto& e : d["experts"])
    out += fmt::format("{}{}:{:.2f}", out.empty() ? "" : ",", e["name"].get<std::string>(),
                       e["weight"].get<double>());
  return out.empty() ? "-" : out;
}

std::string cell(const json& v, const char* format = "{}") {
  if (v.is_null()) return "-";
  if (v.is_number_float()) return fmt::format(fmt::runtime(format), v.get<double>());
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

void run_decisions(const DecisionsArgs& a) {
  std::string target = "/v1/decisions";
  char sep = '?';
  for (size_t i = 0; i < a.options.size(); ++i) {
    if (a.options[i].second->count() == 0) continue;
    target += sep + a.options[i].first + "=" + coordinator::url_encode(a.values[i]);
    sep = '&';
  }
  coordinator::HttpClient client(a.server, a.token);
  const json out = call(client, "GET", target);
  if (a.json_out) {
    fmt::print("{}\n", out.dump(2));
    return;
  }
  if (out.contains("rows")) {  // an aggregate
    for (const auto& row : out["rows"]) fmt::print("{}\n", row.dump());
    fmt::print("{} matching decisions\n", out.value("total", 0));
    return;
  }
  fmt::print("{:>7}  {:<19}  {:<9}  {:>4}  {:<10}  {:<9}  {:<24}  {:>4}  {:>7}  {:>7}  {:>8}\n",
             "id", "time (UTC)", "kind", "job", "task", "strategy", "experts", "rank", "pass1ms",
             "pass2ms", "cost s");
  for (const auto& d : out["decisions"])
    fmt::print("{:>7}  {:<19}  {:<9}  {:>4}  {:<10}  {:<9}  {:<24}  {:>4}  {:>7}  {:>7}  {:>8}\n",
               d["id"].get<int64_t>(), d["time"].get<std::string>().substr(0, 19),
               d["kind"].get<std::string>(), cell(d["job"]), cut(cell(d["task"]), 10),
               cut(d["strategy"].get<std::string>(), 9), cut(experts_text(d), 24),
               cell(d["rank"]), cell(d["first_pass_ms"], "{:.0f}"),
               cell(d["second_pass_ms"], "{:.0f}"), cell(d["measured_cost"], "{:.2f}"));
  if (!out["next_cursor"].is_null())
    fmt::print(stderr, "more rows: add --cursor {}\n", out["next_cursor"].get<std::string>());
}

}  // namespace

void add_client_commands(CLI::App& app) {
  {
    auto a = std::make_shared<SubmitArgs>();
    auto* cmd = app.add_subcommand("submit", "Submit a job (JSON file) to the service");
    cmd->add_option("file", a->file, "JSON: {\"type\": ..., \"spec\": {...}}")->required();
    cmd->add_flag("--wait", a->wait, "Follow the job with a progress bar until it ends");
    cmd->add_option("--submission-id", a->submission_id,
                    "Idempotency key: the same key returns the same job");
    add_client_flags(cmd, *a);
    cmd->callback([a] { run_submit(*a); });
  }
  {
    auto a = std::make_shared<JobsArgs>();
    auto* cmd = app.add_subcommand("jobs", "List jobs, newest first");
    cmd->add_option("--state", a->state, "queued, running, succeeded, failed or cancelled");
    cmd->add_option("--limit", a->limit, "How many (1..1000)")->check(CLI::Range(1, 1000));
    add_client_flags(cmd, *a);
    cmd->callback([a] { run_jobs(*a); });
  }
  {
    auto a = std::make_shared<IdArgs>();
    auto* cmd = app.add_subcommand("status", "A job's state, progress and result");
    cmd->add_option("id", a->id, "Job id")->required();
    add_client_flags(cmd, *a);
    cmd->callback([a] { run_status(*a); });
  }
  {
    auto a = std::make_shared<IdArgs>();
    auto* cmd = app.add_subcommand("cancel", "Cancel a queued or running job");
    cmd->add_option("id", a->id, "Job id")->required();
    add_client_flags(cmd, *a);
    cmd->callback([a] { run_cancel(*a); });
  }
  {
    auto a = std::make_shared<ClientArgs>();
    auto* cmd = app.add_subcommand("experts", "The service's expert registry");
    add_client_flags(cmd, *a);
    cmd->callback([a] { run_experts(*a); });
  }
  {
    auto a = std::make_shared<DecisionsArgs>();
    auto* cmd = app.add_subcommand(
        "decisions", "Audit queries over the service's API (GET /v1/decisions)");
    const std::vector<std::tuple<std::string, std::string, std::string>> filters = {
        {"--since", "since", "From this time: 2024-05-01, -2h, ..."},
        {"--until", "until", "Up to this time, exclusive"},
        {"--task", "task", "Only this task"},
        {"--strategy", "strategy", "Only this strategy (base, expert, prompt, planned, ...)"},
        {"--expert", "expert", "Only decisions whose mixture includes this expert"},
        {"--job", "job", "Only this job"},
        {"--rank", "rank", "Only this worker rank"},
        {"--kind", "kind", "request or placement"},
        {"--request-id", "request_id", "Only this request"},
        {"--group-by", "group_by", "Aggregate: strategy, task, expert, job, rank, kind, day, hour"},
        {"--limit", "limit", "Rows per page (1..1000)"},
        {"--cursor", "cursor", "Continue after a previous page"},
        {"--order", "order", "newest (default) or oldest"},
    };
    a->values.resize(filters.size());
    for (size_t i = 0; i < filters.size(); ++i) {
      const auto& [flag, field, help] = filters[i];
      a->options.emplace_back(field, cmd->add_option(flag, a->values[i], help));
    }
    add_client_flags(cmd, *a);
    cmd->callback([a] { run_decisions(*a); });
  }
}

}  // namespace t2::cli
