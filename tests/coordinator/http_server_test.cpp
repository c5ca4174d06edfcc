// HttpServer on its own: requests reach the handler whole, replies may come
// from another thread, and every broken limit (body, headers, read time,
// malformed request) gets its 4xx JSON error while other clients are served.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <thread>

#include "coordinator/http_client.h"
#include "coordinator/http_server.h"
#include "coordinator/url.h"

namespace t2::coordinator {
namespace {

class Server : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpOptions o;
    o.port = 0;
    o.max_body_bytes = 1024;
    o.max_header_bytes = 2048;
    o.read_timeout_s = 0.5;
    server_ = std::make_unique<HttpServer>(o, [](HttpRequest&& r, HttpReply reply) {
      if (r.path == "/later") {  // answered from another thread
        std::thread([reply] { reply(json_response(200, {{"later", true}})); }).detach();
        return;
      }
      nlohmann::json q = nlohmann::json::object();
      for (const auto& [k, v] : r.query) q[k] = v;
      reply(json_response(200, {{"method", r.method}, {"path", r.path}, {"query", q},
                                {"body", r.body}, {"auth", r.authorization}}));
    });
    server_->start();
    url_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }

  std::string raw(const std::string& request, double wait_s = 3) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server_->port());
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    timeval tv{long(wait_s), 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, size_t(n));
    close(fd);
    return out;
  }

  std::unique_ptr<HttpServer> server_;
  std::string url_;
};

TEST_F(Server, HandsRequestsToTheHandlerAndKeepsConnectionsAlive) {
  HttpClient c(url_, "tok");
  for (int i = 0; i < 3; ++i) {
    const auto r = c.post("/a%20b?x=1&y=two+words&z=%2F", {{"k", i}});
    ASSERT_EQ(r.status, 200u);
    const auto j = r.json();
    EXPECT_EQ(j["path"], "/a b");
    EXPECT_EQ(j["query"]["y"], "two words");
    EXPECT_EQ(j["query"]["z"], "/");
    EXPECT_EQ(j["auth"], "Bearer tok");
    EXPECT_EQ(nlohmann::json::parse(j["body"].get<std::string>())["k"], i);
  }
  EXPECT_EQ(c.get("/later").json()["later"], true);
  EXPECT_EQ(server_->counters().status_2xx.load(), 4);
}

TEST_F(Server, BrokenLimitsGetTheirJsonErrors) {
  const std::string big(4096, 'x');
  auto body = raw("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n" + big);
  EXPECT_NE(body.find("413"), std::string::npos) << body;
  EXPECT_NE(body.find("payload_too_large"), std::string::npos) << body;

  auto headers = raw("GET /x HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(4096, 'h') +
                     "\r\n\r\n");
  EXPECT_NE(headers.find("431"), std::string::npos) << headers;

  auto slow = raw("GET /x HTTP/1.1\r\nHost: a\r\n");  // never finishes its headers
  EXPECT_NE(slow.find("408"), std::string::npos) << slow;
  EXPECT_NE(slow.find("request_timeout"), std::string::npos) << slow;

  auto garbage = raw("NOT HTTP AT ALL\r\n\r\n");
  EXPECT_NE(garbage.find("400"), std::string::npos) << garbage;
  EXPECT_NE(garbage.find("\"error\""), std::string::npos) << garbage;

  // Still serving.
  HttpClient c(url_, "");
  EXPECT_EQ(c.get("/ok").status, 200u);
  EXPECT_GE(server_->counters().status_4xx.load(), 4);
}

TEST_F(Server, ManyClientsAtOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 16; ++t)
    threads.emplace_back([&] {
      HttpClient c(url_, "");
      for (int i = 0; i < 20; ++i) ok += c.get("/p?i=" + std::to_string(i)).status == 200;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 16 * 20);
}

TEST(Url, DecodesAndEncodes) {
  std::string path;
  std::vector<std::pair<std::string, std::string>> q;
  split_target("/v1/x?a=1&&b&c=%41%zz", path, q);
  EXPECT_EQ(path, "/v1/x");
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[1].first, "b");
  EXPECT_EQ(q[1].second, "");
  EXPECT_EQ(q[2].second, "A%zz");  // a malformed escape stays as it was
  EXPECT_EQ(url_decode(url_encode("a b/c?d=é"), true), "a b/c?d=é");
}

}  // namespace
}  // namespace t2::coordinator
