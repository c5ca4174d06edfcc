// coordinator::HttpServer — HTTP/1.1 on Boost.Beast over Asio: a listener and
// one session per connection, each on its own strand. The server knows nothing
// of t2's API: it parses requests within size and time limits, hands each to
// the handler, and writes whatever reply comes back, from any thread, once.
// Invariant: every request that reaches a session gets exactly one response
// (the handler's, or a JSON error for a limit it broke) before the connection
// closes; a slow or oversized client never holds an I/O thread.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace t2::coordinator {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // percent-decoded, without the query
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::string authorization;  // the Authorization header, as sent
  std::string content_type;
  std::string body;
  std::string remote;  // "127.0.0.1:53412"
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// The one error shape: {"error": {"code": "...", "message": "..."}}.
HttpResponse error_response(unsigned status, const std::string& code, const std::string& message);
HttpResponse json_response(unsigned status, const nlohmann::json& body);

// Called once per request on an I/O thread; must not block. `reply` may be
// called later from any thread, exactly once.
using HttpReply = std::function<void(HttpResponse)>;
using HttpHandler = std::function<void(HttpRequest&&, HttpReply)>;

struct HttpOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port (see HttpServer::port)
  size_t max_body_bytes = size_t(1) << 20;
  size_t max_header_bytes = 16 << 10;
  double read_timeout_s = 10;  // a request must arrive whole within this
  double idle_timeout_s = 60;  // a kept-alive connection may wait this long
  int threads = 2;
  size_t max_connections = 1024;
};

struct HttpCounters {
  std::atomic<int64_t> requests{0};
  std::atomic<int64_t> status_2xx{0}, status_4xx{0}, status_5xx{0};
  std::atomic<int64_t> connections{0};  // open now
  std::atomic<int64_t> rejected{0};     // turned away at max_connections
};

class HttpServer {
 public:
  HttpServer(HttpOptions options, HttpHandler handler);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts the I/O threads. Throws t2::Error naming the address when
  // it cannot listen (taken port, bad address).
  void start();
  // New connections are refused from now on; open ones finish their requests.
  void stop_accepting();
  // Closes every connection and joins the threads.
  void stop();

  uint16_t port() const;  // the bound port, after start()
  const HttpCounters& counters() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace t2::coordinator
