// The Beast server behind HttpServer: an acceptor on the io_context, a Session
// per connection on its own strand (do_x / on_x pairs). Limits are enforced by
// the parser (header and body size) and the stream's expiry (slow clients); a
// broken limit still gets a JSON error before the connection closes.
#include "coordinator/http_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <optional>

#include "coordinator/url.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::coordinator {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

HttpResponse error_response(unsigned status, const std::string& code, const std::string& message) {
  nlohmann::json body = {{"error", {{"code", code}, {"message", message}}}};
  return json_response(status, body);
}

HttpResponse json_response(unsigned status, const nlohmann::json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  r.body += '\n';
  return r;
}

struct HttpServer::Impl {
  HttpOptions options;
  HttpHandler handler;
  HttpCounters counters;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::atomic<bool> accepting{true};
  uint16_t port = 0;

  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
};

namespace {

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(int64_t(seconds * 1000));
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), timer_(stream_.get_executor()), server_(server) {
    ++server_.counters.connections;
    beast::error_code ec;
    const auto peer = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = peer.address().to_string() + ":" + std::to_string(peer.port());
  }
  ~Session() { --server_.counters.connections; }

  void run() { net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    self->do_read(); }); }

  // Turned away at the connection limit: one 503, then close.
  void reject() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->keep_alive_ = false;
      self->do_write(error_response(503, "overloaded",
                                    "too many open connections; retry shortly"));
    });
  }

 private:
  // Read one request: the first within read_timeout, later ones (kept alive)
  // may idle up to idle_timeout before they start.
  void do_read() {
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(server_.options.max_header_bytes));
    // Our own timer, not the stream's expiry: that would close the socket, and
    // a client cut off by the timeout should still read its 408.
    stream_.expires_never();
    timed_out_ = false;
    timer_.expires_after(ms(served_ == 0 ? server_.options.read_timeout_s
                                         : server_.options.idle_timeout_s));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;  // cancelled: the request arrived in time
      self->timed_out_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    timer_.cancel();
    if (timed_out_ && ec) ec = beast::error::timeout;
    if (ec == http::error::end_of_stream || ec == net::error::connection_reset ||
        ec == net::error::operation_aborted)
      return do_close();
    if (ec == beast::error::timeout) {
      // An idle keep-alive connection just closes; a request cut short gets 408.
      if (!parser_->got_some() && buffer_.size() == 0) return do_close();
      return fail_request(408, "request_timeout",
                          "the request did not arrive whole within the read timeout");
    }
    if (ec == http::error::body_limit)
      return fail_request(413, "payload_too_large",
                          "request body is over the limit of " +
                              std::to_string(server_.options.max_body_bytes) + " bytes");
    if (ec == http::error::header_limit)
      return fail_request(431, "headers_too_large",
                          "request headers are over the limit of " +
                              std::to_string(server_.options.max_header_bytes) + " bytes");
    if (ec) return fail_request(400, "bad_request", "malformed HTTP request: " + ec.message());

    // The handler may take its time: no read timer runs meanwhile.
    stream_.expires_never();
    ++served_;
    ++server_.counters.requests;
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();

    HttpRequest in;
    in.method = std::string(req.method_string());
    split_target(std::string(req.target()), in.path, in.query);
    in.authorization = std::string(req[http::field::authorization]);
    in.content_type = std::string(req[http::field::content_type]);
    in.body = std::move(req.body());
    in.remote = remote_;

    // Exactly once, from any thread: the write happens on this session's strand.
    auto self = shared_from_this();
    auto once = std::make_shared<std::atomic<bool>>(false);
    HttpReply reply = [self, once](HttpResponse res) {
      if (once->exchange(true)) return;
      net::post(self->stream_.get_executor(), [self, res = std::move(res)]() mutable {
        self->do_write(std::move(res));
      });
    };
    try {
      server_.handler(std::move(in), reply);
    } catch (const std::exception& e) {
      log::get("coord")->error("handler threw: {}", e.what());
      reply(error_response(500, "internal", "internal error; see the coordinator log"));
    }
  }

  void fail_request(unsigned status, const char* code, const std::string& message) {
    ++server_.counters.requests;
    keep_alive_ = false;
    do_write(error_response(status, code, message));
  }

  void do_write(HttpResponse res) {
    if (res.status >= 500) ++server_.counters.status_5xx;
    else if (res.status >= 400) ++server_.counters.status_4xx;
    else ++server_.counters.status_2xx;

    res_ = {};
    res_.version(11);
    res_.result(res.status);
    res_.set(http::field::server, "t2");
    res_.set(http::field::content_type, res.content_type);
    res_.set(http::field::cache_control, "no-store");
    for (auto& [name, value] : res.headers) res_.set(name, value);
    res_.body() = std::move(res.body);
    res_.keep_alive(keep_alive_);
    res_.prepare_payload();
    stream_.expires_after(ms(std::max(server_.options.read_timeout_s, 30.0)));
    http::async_write(stream_, res_,
                      beast::bind_front_handler(&Session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return do_close();
    if (!keep_alive_) return do_linger();
    do_read();
  }

  // Half-close, then drain what the client still sends for a moment, so that
  // a client cut off mid-body reads our error instead of a reset connection.
  void do_linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(64 << 10),
                            beast::bind_front_handler(&Session::on_linger, shared_from_this()));
  }

  void on_linger(beast::error_code ec, std::size_t n) {
    if (ec) return do_close();
    buffer_.commit(n);
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(64 << 10),
                            beast::bind_front_handler(&Session::on_linger, shared_from_this()));
  }

  void do_close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  bool timed_out_ = false;
  HttpServer::Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::string remote_;
  bool keep_alive_ = true;
  int64_t served_ = 0;
};

}  // namespace

void HttpServer::Impl::do_accept() {
  // Each connection gets its own strand: its handlers never run concurrently.
  acceptor.async_accept(net::make_strand(ioc),
                        [this](beast::error_code ec, tcp::socket socket) {
                          on_accept(ec, std::move(socket));
                        });
}

void HttpServer::Impl::on_accept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
  if (!ec && accepting) {
    auto session = std::make_shared<Session>(std::move(socket), *this);
    if (size_t(counters.connections.load()) > options.max_connections) {
      ++counters.rejected;
      session->reject();
    } else {
      session->run();
    }
  }
  if (ec) log::get("coord")->warn("accept: {}", ec.message());
  do_accept();
}

HttpServer::HttpServer(HttpOptions options, HttpHandler handler)
    : impl_(std::make_shared<Impl>()) {
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  Impl& s = *impl_;
  beast::error_code ec;
  const auto address = net::ip::make_address(s.options.address, ec);
  if (ec) fail("http: listen address '{}' is not an IP address ({})", s.options.address,
               ec.message());
  const tcp::endpoint endpoint(address, s.options.port);
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    fail("http: cannot listen on {}:{}: {} (another service on that port? choose another "
         "with [http] listen)", s.options.address, s.options.port, ec.message());
  s.port = s.acceptor.local_endpoint().port();
  s.work.emplace(s.ioc.get_executor());
  s.do_accept();
  for (int i = 0; i < std::max(1, s.options.threads); ++i)
    s.threads.emplace_back([&s] { s.ioc.run(); });
}

void HttpServer::stop_accepting() {
  impl_->accepting = false;
  net::post(impl_->ioc, [impl = impl_] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
  });
}

void HttpServer::stop() {
  Impl& s = *impl_;
  if (s.threads.empty()) return;
  stop_accepting();
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
}

uint16_t HttpServer::port() const { return impl_->port; }
const HttpCounters& HttpServer::counters() const { return impl_->counters; }

}  // namespace t2::coordinator
