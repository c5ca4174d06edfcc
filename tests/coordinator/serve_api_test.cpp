// End to end over loopback: `mpirun -n 3 t2 serve` on a tiny model. Every job
// type runs; cancel, idempotent resubmission, and audit queries that match
// what ran; every kind of bad request gets its 4xx and the JSON error while
// the service keeps serving others; synchronous and OpenAI-style generation.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "tests/coordinator/service_harness.h"

namespace t2::test {
namespace {

using nlohmann::json;

Service* g_service = nullptr;

class ServeApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_service = new Service();
    g_service->start();
  }
  static void TearDownTestSuite() {
    const int status = g_service->drain();
    EXPECT_EQ(status, 0) << g_service->log();
    delete g_service;
  }
  void TearDown() override {
    if (HasFailure()) ADD_FAILURE() << "service log tail:\n" << g_service->log();
  }
  Service& s() { return *g_service; }

  int64_t submit(const json& job) {
    const json r = s().post("/v1/jobs", job);
    return r["job"]["id"].get<int64_t>();
  }
};

// The one error shape, with the expected status and code.
void expect_error(const coordinator::ClientResponse& r, unsigned status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  const json j = json::parse(r.body, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.body;
  ASSERT_TRUE(j.contains("error")) << r.body;
  EXPECT_EQ(j["error"]["code"], code) << r.body;
  EXPECT_TRUE(j["error"]["message"].is_string());
}

// A raw connection: for clients that misbehave at the byte level.
int connect_to(const std::string& url) {
  const auto colon = url.rfind(':');
  const int port = std::stoi(url.substr(colon + 1));
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
  return fd;
}

std::string read_all(int fd, double timeout_s) {
  timeval tv{};
  tv.tv_sec = long(timeout_s);
  tv.tv_usec = long((timeout_s - double(tv.tv_sec)) * 1e6);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  return out;
}

TEST_F(ServeApi, HealthIsOpenEverythingElseNeedsTheToken) {
  auto anonymous = s().client("");
  EXPECT_EQ(anonymous->get("/v1/health").status, 200u);
  expect_error(anonymous->get("/v1/jobs"), 401, "unauthorized");
  expect_error(anonymous->get("/metrics"), 401, "unauthorized");
  auto wrong = s().client("not-the-token");
  expect_error(wrong->get("/v1/jobs"), 401, "unauthorized");
  expect_error(wrong->post("/v1/jobs", {{"type", "generate"}}), 401, "unauthorized");
  expect_error(wrong->get("/v1/decisions"), 401, "unauthorized");
}

TEST_F(ServeApi, BadRequestsGetTheirStatusAndTheJsonError) {
  auto c = s().client();
  expect_error(c->request("POST", "/v1/jobs", "{\"type\": \"generate\", "), 400, "invalid_json");
  expect_error(c->request("POST", "/v1/jobs", "[1, 2]"), 400, "invalid_request");
  expect_error(c->post("/v1/jobs", {{"type", "dance"}, {"spec", json::object()}}), 400,
               "unknown_job_type");
  expect_error(c->post("/v1/jobs", {{"type", 7}, {"spec", json::object()}}), 400,
               "invalid_request");
  expect_error(c->post("/v1/jobs", {{"type", "generate"}, {"spec", {{"prompts", "hi"}}}}), 400,
               "invalid_spec");
  expect_error(c->post("/v1/jobs", {{"type", "generate"},
                                    {"spec", {{"prompts", {"hi"}}, {"max_tokens", "ten"}}}}),
               400, "invalid_spec");
  expect_error(c->post("/v1/jobs", {{"type", "generate"},
                                    {"spec", {{"prompts", {"hi"}}, {"colour", "red"}}}}),
               400, "invalid_spec");
  expect_error(c->post("/v1/jobs", {{"type", "evaluate"}, {"spec", {{"task", "nope"}}}}), 400,
               "invalid_spec");
  expect_error(c->post("/v1/jobs", {{"type", "generate"}, {"spec", {{"prompts", {"x"}}}},
                                    {"priority", 1000}}),
               400, "invalid_request");
  expect_error(c->get("/v1/nothing"), 404, "not_found");
  expect_error(c->get("/v1/jobs/999999"), 404, "not_found");
  expect_error(c->get("/v1/jobs/abc"), 400, "invalid_request");
  expect_error(c->request("DELETE", "/v1/jobs"), 405, "method_not_allowed");
  expect_error(c->get("/v1/decisions?since=yesterday-ish"), 400, "invalid_query");
  expect_error(c->get("/v1/decisions?colour=red"), 400, "invalid_query");
  expect_error(c->get("/v1/experts/none-such"), 404, "not_found");
  // Nothing above was stored.
  EXPECT_TRUE(s().get("/v1/jobs?limit=1000")["jobs"].size() < 100);
}

TEST_F(ServeApi, OversizedBodyGets413AndTheServiceGoesOn) {
  auto c = s().client();
  const std::string big(200 * 1024, 'x');  // the test config allows 64 KiB
  const json body = {{"type", "generate"}, {"spec", {{"prompts", {big}}}}};
  expect_error(c->request("POST", "/v1/jobs", body.dump()), 413, "payload_too_large");
  EXPECT_EQ(s().client()->get("/v1/health").status, 200u);
}

TEST_F(ServeApi, SlowClientGets408WhileOthersAreServed) {
  const int fd = connect_to(s().url());
  ASSERT_GE(fd, 0);
  const std::string start = "GET /v1/jobs HTTP/1.1\r\nHost: x\r\n";  // never finished
  ASSERT_EQ(send(fd, start.data(), start.size(), 0), ssize_t(start.size()));
  // Others are served while the slow one waits.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(s().client()->get("/v1/health").status, 200u);
  const std::string reply = read_all(fd, 10);  // the test config's read timeout is 2 s
  close(fd);
  EXPECT_NE(reply.find("408"), std::string::npos) << reply;
  EXPECT_NE(reply.find("request_timeout"), std::string::npos) << reply;
  // A client that connects and says nothing is closed quietly.
  const int idle = connect_to(s().url());
  EXPECT_EQ(read_all(idle, 10), "");
  close(idle);
}

TEST_F(ServeApi, GenerateJobAnswersEveryPrompt) {
  const json spec = {{"prompts", {"Hello", "What is 2 plus 2?", "Name a colour", "Hi"}},
                     {"max_tokens", 5}};
  const int64_t id = submit({{"type", "generate"}, {"spec", spec}});
  const json job = s().wait_job(id);
  ASSERT_EQ(job["state"], "succeeded") << job.dump();
  EXPECT_EQ(job["result"]["n"], 4);
  const json results = s().get(fmt::format("/v1/jobs/{}/results", id));
  ASSERT_EQ(results["items"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(results["items"][i]["i"], i);
    EXPECT_LE(results["items"][i]["completion_tokens"].get<int>(), 5);
  }
  // One request decision per prompt, and one placement decision per shard.
  const json d = s().get(fmt::format("/v1/decisions?job={}&kind=request&limit=100", id));
  EXPECT_EQ(d["decisions"].size(), 4u);
  std::set<std::string> ids;
  for (const auto& row : d["decisions"]) {
    ids.insert(row["request_id"].get<std::string>());
    EXPECT_EQ(row["strategy"], "base");
  }
  EXPECT_EQ(ids.size(), 4u);
  const json p = s().get(fmt::format("/v1/decisions?job={}&kind=placement", id));
  EXPECT_GE(p["decisions"].size(), 1u);
  for (const auto& row : p["decisions"]) EXPECT_FALSE(row["measured_cost"].is_null());
}

TEST_F(ServeApi, TrainEvaluateAndFewshotRunWithTheExpert) {
  // Train a tiny expert (2 steps over both workers), then use it three ways.
  const int64_t train = submit({{"type", "train"},
                                {"spec", {{"task", "tiny_math"}, {"expert", "math-e2e"},
                                          {"steps", 2}, {"prompts_per_step", 4},
                                          {"samples_per_prompt", 2}, {"max_tokens", 4}}}});
  const json trained = s().wait_job(train, 300);
  ASSERT_EQ(trained["state"], "succeeded") << trained.dump();
  const json expert = s().get("/v1/experts/math-e2e");
  EXPECT_EQ(expert["task"], "tiny_math");
  EXPECT_EQ(expert["source_job"], train);
  EXPECT_GT(expert["values"].get<int64_t>(), 0);
  const json steps = s().get(fmt::format("/v1/jobs/{}/results", train))["steps"];
  ASSERT_EQ(steps.size(), 2u);

  // Evaluate with the expert, then with two-pass adaptation over two tasks.
  const int64_t with_expert = submit({{"type", "evaluate"},
                                      {"spec", {{"task", "tiny_math"}, {"limit", 6},
                                                {"model", "math-e2e"}}}});
  const int64_t mixed = submit({{"type", "evaluate"},
                                {"spec", {{"tasks", {"tiny_math", "tiny_logic"}}, {"limit", 4},
                                          {"model", "t2-auto"}}}});
  const json a = s().wait_job(with_expert), b = s().wait_job(mixed);
  ASSERT_EQ(a["state"], "succeeded") << a.dump();
  ASSERT_EQ(b["state"], "succeeded") << b.dump();
  EXPECT_EQ(a["result"]["n"], 6);
  EXPECT_EQ(b["result"]["n"], 8);
  EXPECT_EQ(b["result"]["per_task"]["tiny_logic"]["n"], 4);

  // Audit: what ran is what the decisions say.
  const json da = s().get(fmt::format("/v1/decisions?job={}&kind=request", with_expert));
  ASSERT_EQ(da["decisions"].size(), 6u);
  for (const auto& row : da["decisions"]) {
    EXPECT_EQ(row["strategy"], "expert");
    ASSERT_EQ(row["experts"].size(), 1u);
    EXPECT_EQ(row["experts"][0]["name"], "math-e2e");
    EXPECT_EQ(row["task"], "tiny_math");
  }
  const json db = s().get(fmt::format("/v1/decisions?job={}&kind=request", mixed));
  ASSERT_EQ(db["decisions"].size(), 8u);
  for (const auto& row : db["decisions"]) {
    EXPECT_EQ(row["strategy"], "prompt");
    EXPECT_TRUE(row["first_pass"].contains("category")) << row.dump();
    EXPECT_FALSE(row["first_pass_ms"].is_null());
  }
  const json by_expert = s().get(fmt::format("/v1/decisions?expert=math-e2e&job={}", with_expert));
  EXPECT_EQ(by_expert["decisions"].size(), 6u);
  const json agg = s().get(fmt::format("/v1/decisions?job={}&kind=request&group_by=task", mixed));
  EXPECT_EQ(agg["total"], 8);

  // Few-shot mixing over the expert on the other task.
  const int64_t few = submit({{"type", "fewshot"},
                              {"spec", {{"task", "tiny_logic"}, {"experts", {"math-e2e"}},
                                        {"shots", 3}, {"population", 4}, {"generations", 2},
                                        {"elites", 2}}}});
  const json f = s().wait_job(few);
  ASSERT_EQ(f["state"], "succeeded") << f.dump();
  EXPECT_TRUE(f["result"]["alpha"].contains("math-e2e")) << f.dump();

  // Training again under the same expert name is refused.
  const auto again = s().client()->post("/v1/jobs", {{"type", "train"},
                                                     {"spec", {{"task", "tiny_math"},
                                                               {"expert", "math-e2e"}}}});
  expect_error(again, 400, "invalid_spec");
}

TEST_F(ServeApi, CancelStopsAJobAndOnlyOnce) {
  std::vector<std::string> prompts(40, "Tell me a long story about numbers");
  const int64_t id = submit({{"type", "generate"},
                             {"spec", {{"prompts", prompts}, {"max_tokens", 64}}}});
  const json cancelled = s().post(fmt::format("/v1/jobs/{}/cancel", id), json::object());
  EXPECT_EQ(cancelled["job"]["state"], "cancelled");
  expect_error(s().client()->post(fmt::format("/v1/jobs/{}/cancel", id), json::object()), 409,
               "conflict");
  expect_error(s().client()->post("/v1/jobs/424242/cancel", json::object()), 404, "not_found");
  // The workers are free again: a small job still runs.
  const int64_t next = submit({{"type", "generate"},
                               {"spec", {{"prompts", {"ok"}}, {"max_tokens", 2}}}});
  EXPECT_EQ(s().wait_job(next)["state"], "succeeded");
  EXPECT_EQ(s().get(fmt::format("/v1/jobs/{}", id))["state"], "cancelled");
}

TEST_F(ServeApi, ResubmissionWithTheSameIdIsTheSameJob) {
  const json job = {{"type", "generate"},
                    {"spec", {{"prompts", {"once"}}, {"max_tokens", 2}}},
                    {"submission_id", "client-key-17"}};
  const auto first = s().client()->post("/v1/jobs", job);
  ASSERT_EQ(first.status, 202u) << first.body;
  const auto second = s().client()->post("/v1/jobs", job);
  ASSERT_EQ(second.status, 200u) << second.body;
  EXPECT_EQ(first.json()["job"]["id"], second.json()["job"]["id"]);
  EXPECT_FALSE(second.json()["created"].get<bool>());
  json other = job;
  other["type"] = "evaluate";
  expect_error(s().client()->post("/v1/jobs", other), 409, "conflict");
  const int64_t id = first.json()["job"]["id"];
  EXPECT_EQ(s().wait_job(id)["state"], "succeeded");
  // After it finished: still the same job, still one set of decisions.
  EXPECT_EQ(s().client()->post("/v1/jobs", job).json()["job"]["id"], id);
  EXPECT_EQ(s().get(fmt::format("/v1/decisions?job={}&kind=request", id))["decisions"].size(),
            1u);
}

TEST_F(ServeApi, SynchronousGenerateAndChatCompletions) {
  const json g = s().post("/v1/generate", {{"prompts", {"a", "b"}}, {"max_tokens", 3}});
  ASSERT_EQ(g["results"].size(), 2u);
  for (const auto& r : g["results"]) EXPECT_FALSE(r["decision_id"].is_null());

  const json chat = s().post("/v1/chat/completions",
                             {{"model", "t2-auto"},
                              {"messages", {{{"role", "user"}, {"content", "What is 1 plus 1?"}}}},
                              {"max_tokens", 4},
                              {"temperature", 0}});
  EXPECT_EQ(chat["object"], "chat.completion");
  ASSERT_EQ(chat["choices"].size(), 1u);
  EXPECT_EQ(chat["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(chat["choices"][0]["message"]["content"].is_string());
  EXPECT_EQ(chat["usage"]["total_tokens"].get<int>(),
            chat["usage"]["prompt_tokens"].get<int>() +
                chat["usage"]["completion_tokens"].get<int>());
  const int64_t decision = chat["t2"]["decision_id"].get<int64_t>();
  const json row = s().get(fmt::format("/v1/decisions/{}", decision));
  EXPECT_EQ(row["strategy"], "prompt");
  EXPECT_EQ(row["kind"], "request");

  auto c = s().client();
  expect_error(c->post("/v1/chat/completions",
                       {{"model", "t2-auto"}, {"stream", true},
                        {"messages", {{{"role", "user"}, {"content", "x"}}}}}),
               400, "unsupported");
  expect_error(c->post("/v1/chat/completions",
                       {{"model", "gpt-17"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}}),
               404, "model_not_found");
  expect_error(c->post("/v1/chat/completions", {{"model", "base"}, {"messages", "hi"}}), 400,
               "invalid_request");
  const json models = s().get("/v1/models");
  EXPECT_EQ(models["object"], "list");
}

TEST_F(ServeApi, MetricsAndEventsDescribeTheService) {
  const int64_t id = submit({{"type", "generate"},
                             {"spec", {{"prompts", {"m"}}, {"max_tokens", 2}}}});
  ASSERT_EQ(s().wait_job(id)["state"], "succeeded");
  const auto m = s().client()->get("/metrics");
  ASSERT_EQ(m.status, 200u);
  for (const char* name : {"t2_jobs{state=\"succeeded\"}", "t2_queue_depth",
                           "t2_rank_tokens_per_second{rank=\"1\"}", "t2_decisions_total{",
                           "t2_http_requests_total{code=\"2xx\"}"})
    EXPECT_NE(m.body.find(name), std::string::npos) << name << "\n" << m.body;
  const json ev = s().get(fmt::format("/v1/jobs/{}/events", id));
  std::set<std::string> kinds;
  for (const auto& e : ev["events"]) kinds.insert(e["kind"].get<std::string>());
  EXPECT_TRUE(kinds.count("shard")) << ev.dump();
  EXPECT_TRUE(kinds.count("result")) << ev.dump();
  // Long-poll: nothing new after the last event of a finished job comes back at once.
  const json none = s().get(fmt::format("/v1/jobs/{}/events?after={}&wait=5", id,
                                        ev["next_after"].get<int64_t>()));
  EXPECT_TRUE(none["events"].empty());
}

}  // namespace
}  // namespace t2::test
