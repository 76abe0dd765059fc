// Router matching, 404/405, HEAD, errors; Response serialisation.
#include "http/router.h"

#include <catch2/catch.hpp>

#include <optional>
#include <stdexcept>

using namespace isthmus::http;

namespace {

Request make(std::string method, std::string path) {
  Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.target = r.path;
  return r;
}

Response route(const Router& router, const Request& req) {
  std::optional<Response> out;
  router.dispatch(req, [&](Response r) { out = std::move(r); });
  REQUIRE(out.has_value());
  return *out;
}

std::string header(const Response& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (iequals(n, name)) return v;
  }
  return {};
}

}  // namespace

TEST_CASE("router: exact, prefix, most specific wins", "[http][router]") {
  Router router;
  router.add("GET", "/healthz", [](const Request&) { return Response::text(200, "healthz"); });
  router.add("GET", "/v1/streams/", [](const Request&) { return Response::text(200, "list"); });
  router.add_prefix("POST", "/v1/streams/",
                    [](const Request& r) { return Response::text(200, "post " + r.path); });
  router.add_prefix("POST", "/v1/streams/special/",
                    [](const Request&) { return Response::text(200, "special"); });

  CHECK(route(router, make("GET", "/healthz")).body == "healthz");
  CHECK(route(router, make("GET", "/v1/streams/")).body == "list");
  CHECK(route(router, make("POST", "/v1/streams/S/rebuild")).body ==
        "post /v1/streams/S/rebuild");
  CHECK(route(router, make("POST", "/v1/streams/special/x")).body == "special");

  Response nf = route(router, make("GET", "/healthz/x"));
  CHECK(nf.status == 404);
  CHECK(nf.body == R"({"error":"not found"})");
  CHECK(nf.content_type == "application/json");
  CHECK(route(router, make("GET", "/v1/streams")).status == 404);

  Response na = route(router, make("DELETE", "/healthz"));
  CHECK(na.status == 405);
  CHECK(na.body == R"({"error":"method not allowed"})");
  CHECK(header(na, "Allow") == "GET, HEAD");
  // A path matched by a GET exact route and a POST prefix route.
  Response both = route(router, make("PUT", "/v1/streams/"));
  CHECK(both.status == 405);
  CHECK(header(both, "Allow") == "GET, HEAD, POST");
  CHECK(header(route(router, make("GET", "/v1/streams/S/rebuild")), "Allow") == "POST");
}

TEST_CASE("router: HEAD uses GET", "[http][router]") {
  Router router;
  router.add("GET", "/x", [](const Request&) { return Response::text(200, "body"); });
  CHECK(route(router, make("HEAD", "/x")).body == "body");  // the server drops it
}

TEST_CASE("router: handler exceptions become 500", "[http][router]") {
  Router router;
  router.add("GET", "/boom",
             [](const Request&) -> Response { throw std::runtime_error("kaboom"); });
  Response r = route(router, make("GET", "/boom"));
  CHECK(r.status == 500);
  CHECK(r.body == R"({"error":"internal error"})");
}

TEST_CASE("router: async handlers answer later, once", "[http][router]") {
  Router router;
  Responder saved;
  router.add_async("GET", "/later", [&](const Request&, Responder respond) {
    saved = std::move(respond);
  });
  int calls = 0;
  int status = 0;
  router.dispatch(make("GET", "/later"), [&](Response r) {
    ++calls;
    status = r.status;
  });
  CHECK(calls == 0);
  REQUIRE(saved);
  saved(Response::text(202, "ok"));
  saved(Response::text(500, "again"));
  CHECK(calls == 1);
  CHECK(status == 202);
}

TEST_CASE("response: serialisation", "[http][response]") {
  Response r = Response::error(404, "no \"such\" thing");
  CHECK(r.body == R"({"error":"no \"such\" thing"})");
  r.header("X-Ok", "1").header("Content-Length", "999").header("X-Evil", "a\r\nInjected: 1");
  std::string wire = serialize(r, true, false, false);
  CHECK(wire ==
        "HTTP/1.1 404 Not Found\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 29\r\n"
        "X-Ok: 1\r\n"
        "X-Evil: aInjected: 1\r\n"
        "\r\n" +
            r.body);
  std::string closing = serialize(Response::text(200, "hi"), false, false, true);
  CHECK(closing ==
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 2\r\n"
        "Connection: close\r\n"
        "\r\n");
  CHECK(serialize(Response::text(200, "hi"), true, true, false).find("Connection: keep-alive") !=
        std::string::npos);
  Response nc;
  nc.status = 204;
  nc.body = "ignored";
  CHECK(serialize(nc, true, false, false) == "HTTP/1.1 204 No Content\r\n\r\n");
  CHECK(std::string(reason_phrase(431)) == "Request Header Fields Too Large");
}

TEST_CASE("peer address: loopback detection", "[http]") {
  CHECK(PeerAddress{"127.0.0.1", 1}.is_loopback());
  CHECK(PeerAddress{"127.3.2.1", 1}.is_loopback());
  CHECK(PeerAddress{"::1", 1}.is_loopback());
  CHECK(PeerAddress{"::ffff:127.0.0.1", 1}.is_loopback());
  CHECK_FALSE(PeerAddress{"10.0.0.1", 1}.is_loopback());
  CHECK_FALSE(PeerAddress{"::ffff:10.0.0.1", 1}.is_loopback());
  CHECK_FALSE(PeerAddress{"", 0}.is_loopback());
  CHECK(PeerAddress{"::1", 80}.to_string() == "[::1]:80");
}
