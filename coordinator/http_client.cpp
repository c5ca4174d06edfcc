// Blocking Beast client (see http_client.h).
#include "coordinator/http_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdlib>
#include <optional>

#include "t2/error.h"

namespace t2::coordinator {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

nlohmann::json ClientResponse::json() const {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) fail("the server answered {} with a body that is not JSON: {}", status,
                             body.substr(0, 200));
  return j;
}

struct HttpClient::Impl {
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
};

HttpClient::HttpClient(const std::string& server, std::string token, double timeout_s)
    : token_(std::move(token)), timeout_s_(timeout_s), impl_(std::make_unique<Impl>()) {
  std::string rest = server;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  if (rest.rfind("https://", 0) == 0) fail("https is not supported: use http://HOST:PORT");
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0)
    fail("server '{}' should be http://HOST:PORT", server);
  host_ = rest.substr(0, colon);
  try {
    const int port = std::stoi(rest.substr(colon + 1));
    if (port <= 0 || port > 65535) throw std::out_of_range("port");
    port_ = static_cast<unsigned short>(port);
  } catch (const std::exception&) {
    fail("server '{}' has no valid port", server);
  }
}

HttpClient::~HttpClient() = default;

ClientResponse HttpClient::request(const std::string& method, const std::string& target,
                                   const std::string& body, const std::string& content_type) {
  const auto timeout = std::chrono::milliseconds(int64_t(timeout_s_ * 1000));
  for (int attempt = 0;; ++attempt) {
    const bool reused = impl_->stream.has_value();
    try {
      if (!impl_->stream) {
        tcp::resolver resolver(impl_->ioc);
        impl_->stream.emplace(impl_->ioc);
        impl_->stream->expires_after(timeout);
        impl_->stream->connect(resolver.resolve(host_, std::to_string(port_)));
      }
      http::request<http::string_body> req{http::string_to_verb(method), target, 11};
      req.set(http::field::host, host_);
      req.set(http::field::user_agent, "t2-client");
      if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
      if (!body.empty() || method == "POST") {
        req.set(http::field::content_type, content_type);
        req.body() = body;
      }
      req.keep_alive(true);
      req.prepare_payload();
      impl_->stream->expires_after(timeout);
      http::write(*impl_->stream, req);
      http::response_parser<http::string_body> parser;
      parser.body_limit(size_t(1) << 30);
      http::read(*impl_->stream, impl_->buffer, parser);
      auto& res = parser.get();
      ClientResponse out{res.result_int(), std::move(res.body())};
      if (!res.keep_alive()) {
        beast::error_code ignored;
        impl_->stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
        impl_->stream.reset();
        impl_->buffer.clear();
      }
      return out;
    } catch (const std::exception& e) {
      impl_->stream.reset();
      impl_->buffer.clear();
      // A kept-alive connection the server closed meanwhile: one fresh try.
      if (attempt == 0 && reused) continue;
      fail("cannot reach the t2 service at http://{}:{}: {} (is `t2 serve` running? set "
           "--server or T2_SERVER)", host_, port_, e.what());
    }
  }
}

std::string default_server() {
  const char* env = std::getenv("T2_SERVER");
  return env && *env ? env : "http://127.0.0.1:8080";
}

std::string default_token() {
  const char* env = std::getenv("T2_TOKEN");
  return env && *env ? env : "";
}

}  // namespace t2::coordinator
