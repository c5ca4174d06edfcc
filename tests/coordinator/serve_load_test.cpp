// Load on the read side of the API: 50 concurrent clients on job status and
// audit endpoints for a bounded time (T2_LOAD_SECONDS, default 30), loopback
// only. Every request must succeed; p50 and p99 latencies are printed.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "tests/coordinator/service_harness.h"

namespace t2::test {
namespace {

using nlohmann::json;

double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * double(v.size())))];
}

TEST(ServeLoad, FiftyClientsOnStatusAndAuditWithoutErrors) {
  const double seconds = std::getenv("T2_LOAD_SECONDS") ? std::atof(std::getenv("T2_LOAD_SECONDS"))
                                                        : 30.0;
  Service s;
  s.start();
  // Something to read: a few finished jobs with their decisions.
  std::vector<int64_t> jobs;
  for (int k = 0; k < 3; ++k) {
    const json r = s.post("/v1/jobs", {{"type", "generate"},
                                       {"spec", {{"prompts", {"a", "b", "c", "d"}},
                                                 {"max_tokens", 3}}}});
    jobs.push_back(r["job"]["id"]);
  }
  for (int64_t id : jobs) ASSERT_EQ(s.wait_job(id)["state"], "succeeded");

  constexpr int kClients = 50;
  std::atomic<int64_t> errors{0};
  std::mutex mutex;
  std::vector<double> status_ms, audit_ms;
  std::string first_error;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto http = s.client();
      std::vector<double> mine_status, mine_audit;
      for (int64_t i = 0; std::chrono::steady_clock::now() < until; ++i) {
        const bool audit = (i + c) % 2 == 1;
        const int64_t job = jobs[size_t(i) % jobs.size()];
        const std::string target =
            audit ? fmt::format("/v1/decisions?job={}&limit=20", job)
                  : fmt::format("/v1/jobs/{}", job);
        const auto t0 = std::chrono::steady_clock::now();
        try {
          const auto r = http->get(target);
          if (r.status != 200) throw std::runtime_error(fmt::format("{} {}", r.status, r.body));
        } catch (const std::exception& e) {
          if (errors++ == 0) {
            std::lock_guard lock(mutex);
            first_error = target + ": " + e.what();
          }
          continue;
        }
        const double ms = std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - t0).count();
        (audit ? mine_audit : mine_status).push_back(ms);
      }
      std::lock_guard lock(mutex);
      status_ms.insert(status_ms.end(), mine_status.begin(), mine_status.end());
      audit_ms.insert(audit_ms.end(), mine_audit.begin(), mine_audit.end());
    });
  }
  for (auto& t : clients) t.join();

  const size_t n = status_ms.size() + audit_ms.size();
  fmt::print("load: {} clients, {:.0f} s, {} requests ({:.0f}/s), {} errors\n", kClients, seconds,
             n, double(n) / seconds, errors.load());
  fmt::print("  status GET /v1/jobs/ID        : {:6} requests, p50 {:.2f} ms, p99 {:.2f} ms\n",
             status_ms.size(), percentile(status_ms, 0.5), percentile(status_ms, 0.99));
  fmt::print("  audit  GET /v1/decisions?job= : {:6} requests, p50 {:.2f} ms, p99 {:.2f} ms\n",
             audit_ms.size(), percentile(audit_ms, 0.5), percentile(audit_ms, 0.99));
  EXPECT_EQ(errors.load(), 0) << first_error;
  EXPECT_GT(n, size_t(kClients));
  EXPECT_EQ(s.get("/v1/health")["status"], "ok");
  EXPECT_EQ(s.drain(), 0) << s.log();
}

}  // namespace
}  // namespace t2::test
