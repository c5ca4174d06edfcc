// coordinator::HttpClient — a small blocking HTTP/1.1 client (Boost.Beast) for
// t2's own API: the CLI's client commands, tests and benchmarks. One
// connection, kept alive and reopened when the server closed it.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace t2::coordinator {

struct ClientResponse {
  unsigned status = 0;
  std::string body;
  nlohmann::json json() const;  // the body parsed; throws t2::Error when it is not JSON
};

class HttpClient {
 public:
  // `server`: "http://host:port" or "host:port". Throws t2::Error when malformed.
  HttpClient(const std::string& server, std::string token, double timeout_s = 330);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Throws t2::Error naming the server when it cannot be reached.
  ClientResponse request(const std::string& method, const std::string& target,
                         const std::string& body = "",
                         const std::string& content_type = "application/json");
  ClientResponse get(const std::string& target) { return request("GET", target); }
  ClientResponse post(const std::string& target, const nlohmann::json& body) {
    return request("POST", target, body.dump());
  }

  const std::string& host() const { return host_; }
  unsigned short port() const { return port_; }

  struct Impl;

 private:
  std::string host_;
  unsigned short port_ = 0;
  std::string token_;
  double timeout_s_;
  std::unique_ptr<Impl> impl_;
};

// The server and token the client commands use: flags first, then T2_SERVER
// and T2_TOKEN, then http://127.0.0.1:8080 (no default token).
std::string default_server();
std::string default_token();

}  // namespace t2::coordinator
