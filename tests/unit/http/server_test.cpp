// Server on a real loopback socket: the loop runs on a thread, the test is a
// blocking client. Every test ends with the server closed and
// uv_loop_close() == 0.
#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

using namespace isthmus::http;

namespace {

// A string literal with embedded NULs, whole.
template <size_t N>
std::string lit(const char (&s)[N]) {
  return std::string(s, N - 1);
}


// Owns a loop, a Server on 127.0.0.1:0 and the thread running the loop.
class LoopServer {
 public:
  LoopServer(Router& router, Limits limits = {}) {
    REQUIRE(uv_loop_init(&loop_) == 0);
    server_ = std::make_unique<Server>(&loop_, router, limits);
    auto st = server_->listen("127.0.0.1", 0);
    REQUIRE(st.is_ok());
    REQUIRE(server_->bound_port() != 0);
    REQUIRE(uv_async_init(&loop_, &stop_, &LoopServer::on_stop) == 0);
    stop_.data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  ~LoopServer() { stop(); }

  uint16_t port() const { return server_->bound_port(); }
  uv_loop_t* loop() { return &loop_; }

  // Closes the server on the loop thread, joins, and returns uv_loop_close().
  int stop() {
    if (!thread_.joinable()) return loop_rc_;
    uv_async_send(&stop_);
    thread_.join();
    server_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    loop_rc_ = uv_loop_close(&loop_);
    return loop_rc_;
  }
  bool close_done() const { return close_done_; }

 private:
  static void on_stop(uv_async_t* a) {
    auto* self = static_cast<LoopServer*>(a->data);
    self->server_->close([self] {
      self->close_done_ = true;
      uv_close(reinterpret_cast<uv_handle_t*>(&self->stop_), nullptr);
    });
  }

  uv_loop_t loop_{};
  uv_async_t stop_{};
  std::unique_ptr<Server> server_;
  std::thread thread_;
  bool close_done_ = false;
  int loop_rc_ = -1;
};

struct Reply {
  int status = 0;  // 0: no (complete) response before close or timeout
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string header(const std::string& n) const {
    auto it = headers.find(n);
    return it == headers.end() ? std::string() : it->second;
  }
};

// A blocking client socket with a receive timeout, so no test can hang.
class Client {
 public:
  explicit Client(uint16_t port, int timeout_ms = 5000) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }

  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  Reply read_response() {
    Reply r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0) return r;
    int status = std::stoi(status_line.substr(9, 3));
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t v = line.find_first_not_of(' ', colon + 1);
      r.headers[name] = v == std::string::npos ? "" : line.substr(v);
      pos = e + 2;
    }
    size_t len = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    while (buf_.size() < len) {
      if (!fill()) return r;
    }
    r.body = buf_.substr(0, len);
    buf_.erase(0, len);
    r.status = status;
    return r;
  }

  // True when the server closes the connection (EOF or reset) before the
  // receive timeout; unread response bytes are discarded.
  bool wait_closed() {
    char tmp[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // Everything until the server closes (or the timeout).
  std::string read_all() {
    while (fill()) {
    }
    return std::exchange(buf_, std::string());
  }

 private:
  bool fill() {
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buf_;
};

const std::string kGet = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";

void add_routes(Router& router) {
  router.add("GET", "/hello", [](const Request& r) {
    return Response::json(200, std::string(R"({"hello":")") + r.query + "\"}");
  });
  router.add("GET", "/peer", [](const Request& r) {
    return Response::text(200, r.peer.is_loopback() ? "loopback" : "remote:" + r.peer.ip);
  });
  router.add("POST", "/echo", [](const Request& r) { return Response::text(200, r.body); });
  router.add("GET", "/bye", [](const Request&) {
    Response r = Response::text(200, "bye");
    r.close = true;
    return r;
  });
}

}  // namespace

TEST_CASE("server: routes, 404, 405", "[http][server]") {
  Router router;
  add_routes(router);
  LoopServer srv(router);
  Client c(srv.port());

  REQUIRE(c.send("GET /hello?x HTTP/1.1\r\nHost: t\r\n\r\n"));
  Reply ok = c.read_response();
  CHECK(ok.status == 200);
  CHECK(ok.body == R"({"hello":"x"})");
  CHECK(ok.header("content-type") == "application/json");
  CHECK(ok.header("content-length") == "13");
  CHECK(ok.header("connection").empty());

  REQUIRE(c.send("GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"));
  Reply nf = c.read_response();
  CHECK(nf.status == 404);
  CHECK(nf.body == R"({"error":"not found"})");

  REQUIRE(c.send("DELETE /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
  Reply na = c.read_response();
  CHECK(na.status == 405);
  CHECK(na.header("allow") == "GET, HEAD");

  Client d(srv.port());
  REQUIRE(d.send("GET /peer HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(d.read_response().body == "loopback");

  REQUIRE(srv.stop() == 0);
  CHECK(srv.close_done());
}

TEST_CASE("server: HEAD sends no body", "[http][server]") {
  Router router;
  add_routes(router);
  LoopServer srv(router);
  Client c(srv.port());
  REQUIRE(c.send("HEAD /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  std::string all = c.read_all();
  CHECK(all.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(all.find("Content-Length: 12\r\n") != std::string::npos);
  CHECK(all.size() >= 4);
  CHECK(all.substr(all.size() - 4) == "\r\n\r\n");
  REQUIRE(srv.stop() == 0);
}

TEST_CASE("server: keep-alive and pipelining on one connection", "[http][server]") {
  Router router;
  add_routes(router);
  LoopServer srv(router);
  Client c(srv.port());
  REQUIRE(c.send(kGet));
  CHECK(c.read_response().status == 200);
  REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde"));
  Reply echo = c.read_response();
  CHECK(echo.status == 200);
  CHECK(echo.body == "abcde");

  // Three pipelined in one write, answered in order.
  REQUIRE(c.send("GET /hello?1 HTTP/1.1\r\n\r\nGET /hello?2 HTTP/1.1\r\n\r\n"
                 "GET /hello?3 HTTP/1.1\r\nConnection: close\r\n\r\n"));
  CHECK(c.read_response().body == R"({"hello":"1"})");
  CHECK(c.read_response().body == R"({"hello":"2"})");
  Reply last = c.read_response();
  CHECK(last.body == R"({"hello":"3"})");
  CHECK(last.header("connection") == "close");
  CHECK(c.wait_closed());
  REQUIRE(srv.stop() == 0);
}

TEST_CASE("server: a handler can end the connection", "[http][server]") {
  Router router;
  add_routes(router);
  LoopServer srv(router);
  Client c(srv.port());
  REQUIRE(c.send("GET /bye HTTP/1.1\r\n\r\n"));
  Reply r = c.read_response();
  CHECK(r.body == "bye");
  CHECK(r.header("connection") == "close");
  CHECK(c.wait_closed());

  Client h10(srv.port());
  REQUIRE(h10.send("GET /hello HTTP/1.0\r\n\r\n"));
  CHECK(h10.read_response().header("connection") == "close");
  CHECK(h10.wait_closed());
  REQUIRE(srv.stop() == 0);
}

TEST_CASE("server: garbage gets 400 and closes only that connection", "[http][server]") {
  Router router;
  add_routes(router);
  LoopServer srv(router);
  Client good(srv.port());
  REQUIRE(good.send(kGet));
  CHECK(good.read_response().status == 200);

  Client bad(srv.port());
  REQUIRE(bad.send(lit("\x16\x03\x01garbage\0\r\n\r\n")));
  Reply r = bad.read_response();
  CHECK(r.status == 400);
  CHECK(r.header("connection") == "close");
  CHECK(r.body.find("\"error\"") != std::string::npos);
  CHECK(bad.wait_closed());

  // The other connection still works.
  REQUIRE(good.send(kGet));
  CHECK(good.read_response().status == 200);
  REQUIRE(srv.stop() == 0);
}

TEST_CASE("server: requests before a malformed one are answered first", "[http][server]") {
  Router router;
  add_routes(router);
  LoopServer srv(router);
  Client c(srv.port());
  REQUIRE(c.send(kGet + "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"));
  CHECK(c.read_response().status == 200);
  CHECK(c.read_response().status == 400);
  CHECK(c.wait_closed());
  REQUIRE(srv.stop() == 0);
}

TEST_CASE("server: oversized headers 431, oversized body 413", "[http][server]") {
  Router router;
  add_routes(router);
  Limits lim;
  lim.request.max_header_bytes = 2048;
  lim.request.max_body_bytes = 1000;
  LoopServer srv(router, lim);
  {
    Client c(srv.port());
    REQUIRE(c.send("GET /hello HTTP/1.1\r\nX-Big: " + std::string(5000, 'x') + "\r\n\r\n"));
    Reply r = c.read_response();
    CHECK(r.status == 431);
    CHECK(c.wait_closed());
  }
  {
    Client c(srv.port());
    REQUIRE(c.send("POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"));
    // The client goes on sending the body it announced; the 413 must still
    // arrive intact (the server lingers instead of resetting).
    REQUIRE(c.send(std::string(5000, 'b')));
    Reply r = c.read_response();
    CHECK(r.status == 413);
    c.shutdown_write();
    CHECK(c.wait_closed());
  }
  REQUIRE(srv.stop() == 0);
}

TEST_CASE("server: Expect: 100-continue", "[http][server]") {
  Router router;
  add_routes(router);
  LoopServer srv(router);
  Client c(srv.port());
  REQUIRE(c.send("POST /echo HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"));
  Reply cont = c.read_response();
  CHECK(cont.status == 100);
  REQUIRE(c.send("xyz"));
  CHECK(c.read_response().body == "xyz");
  REQUIRE(srv.stop() == 0);
}

TEST_CASE("server: slowloris and idle timeouts", "[http][server]") {
  Router router;
  add_routes(router);
  Limits lim;
  lim.header_timeout_ms = 300;
  lim.idle_timeout_ms = 400;
  lim.linger_ms = 200;
  LoopServer srv(router, lim);

  // Headers trickle in but never complete: 408, then closed, even though
  // bytes keep arriving.
  Client slow(srv.port());
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(slow.send("GET /hello HTTP/1.1\r\n"));
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    slow.send("X-A: b\r\n");
  }
  Reply r = slow.read_response();
  CHECK(r.status == 408);
  CHECK(slow.wait_closed());
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took < std::chrono::seconds(3));

  // An idle keep-alive connection is closed without a response.
  Client idle(srv.port());
  REQUIRE(idle.send(kGet));
  CHECK(idle.read_response().status == 200);
  CHECK(idle.wait_closed());
  REQUIRE(srv.stop() == 0);
}

TEST_CASE("server: connection limit", "[http][server]") {
  Router router;
  add_routes(router);
  Limits lim;
  lim.max_connections = 2;
  LoopServer srv(router, lim);
  Client a(srv.port());
  Client b(srv.port());
  REQUIRE(a.send(kGet));
  REQUIRE(b.send(kGet));
  CHECK(a.read_response().status == 200);
  CHECK(b.read_response().status == 200);
  Client c(srv.port());  // connects (kernel backlog), then is closed
  CHECK(c.wait_closed());
  REQUIRE(a.send(kGet));
  CHECK(a.read_response().status == 200);
  REQUIRE(srv.stop() == 0);
}

TEST_CASE("server: async handler answers later", "[http][server]") {
  Router router;
  uv_loop_t* loop = nullptr;  // set before the first request arrives
  router.add_async("GET", "/later", [&loop](const Request& req, Responder respond) {
    struct Later {
      uv_timer_t timer{};
      Responder respond;
      std::string query;
    };
    auto* l = new Later{{}, std::move(respond), req.query};
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, [](uv_timer_t* t) {
      auto* me = static_cast<Later*>(t->data);
      me->respond(Response::text(200, "later " + me->query));
      uv_close(reinterpret_cast<uv_handle_t*>(t),
               [](uv_handle_t* h) { delete static_cast<Later*>(h->data); });
    }, 50, 0);
  });
  add_routes(router);
  LoopServer srv(router);
  loop = srv.loop();
  Client c(srv.port());
  // Pipelined behind an async request: answered in order.
  REQUIRE(c.send("GET /later?a HTTP/1.1\r\n\r\nGET /hello?b HTTP/1.1\r\n\r\n"));
  CHECK(c.read_response().body == "later a");
  CHECK(c.read_response().body == R"({"hello":"b"})");
  REQUIRE(srv.stop() == 0);
}

TEST_CASE("server: close() with open connections finishes cleanly", "[http][server]") {
  spdlog::set_level(spdlog::level::debug);  // exercise the close-reason logging
  Router router;
  add_routes(router);
  LoopServer srv(router);
  Client idle(srv.port());
  REQUIRE(idle.send(kGet));
  CHECK(idle.read_response().status == 200);
  Client partial(srv.port());
  REQUIRE(partial.send("GET /hello HTTP/1.1\r\nHost"));
  Client silent(srv.port());
  // Let the server accept all three before closing.
  Client probe(srv.port());
  REQUIRE(probe.send(kGet));
  CHECK(probe.read_response().status == 200);
  REQUIRE(srv.stop() == 0);
  CHECK(srv.close_done());
  CHECK(idle.wait_closed());
  CHECK(partial.wait_closed());
  CHECK(silent.wait_closed());
  spdlog::set_level(spdlog::level::info);
}

TEST_CASE("server: listen errors", "[http][server]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  Router router;
  {
    Server s(&loop, router);
    auto st = s.listen("not-an-ip", 0);
    CHECK_FALSE(st.is_ok());
    CHECK(st.code() == isthmus::Code::kInvalid);
    Server t(&loop, router);
    REQUIRE(t.listen("127.0.0.1", 0).is_ok());
    Server u(&loop, router);
    auto busy = u.listen("127.0.0.1", t.bound_port());
    CHECK(busy.code() == isthmus::Code::kIo);
    CHECK(t.listen("127.0.0.1", 0).code() == isthmus::Code::kConflict);
    bool done = false;
    s.close([&] { done = true; });  // nothing open: immediate
    CHECK(done);
    // t and u are destroyed while listening: handles free themselves.
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}
