// isthmusctl's HTTP/1.1 response parser: framing by Content-Length,
// chunked encoding and end of connection.
#include "ctl/http_client.h"

#include <catch2/catch.hpp>

#include <string>

using namespace isthmus::ctl;

namespace {

const std::string kOk =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n"
    "{\"a\":\"b\"}\r\n";

}  // namespace

TEST_CASE("http response: Content-Length, incrementally", "[ctl][http]") {
  HttpResponse r;
  for (size_t n = 0; n < kOk.size(); ++n) {
    auto st = parse_response(std::string_view(kOk).substr(0, n), false, r);
    REQUIRE(st);
    CHECK(*st == ParseState::kIncomplete);
  }
  auto st = parse_response(kOk, false, r);
  REQUIRE(st);
  CHECK(*st == ParseState::kComplete);
  CHECK(r.status == 200);
  CHECK(r.reason == "OK");
  CHECK(r.header("content-type") == "application/json");
  CHECK(r.header("X-Missing").empty());
  CHECK(r.body == "{\"a\":\"b\"}\r\n");
}

TEST_CASE("http response: 503 with a body is still a response", "[ctl][http]") {
  HttpResponse r;
  auto st = parse_response("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}", false, r);
  REQUIRE(st);
  CHECK(*st == ParseState::kComplete);
  CHECK(r.status == 503);
  CHECK(r.reason == "Service Unavailable");
  CHECK(r.body == "{}");
}

TEST_CASE("http response: chunked", "[ctl][http]") {
  const std::string raw =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks."
      "\r\n0\r\nTrailer: x\r\n\r\n";
  HttpResponse r;
  auto partial = parse_response(std::string_view(raw).substr(0, raw.size() - 2), false, r);
  REQUIRE(partial);
  CHECK(*partial == ParseState::kIncomplete);
  auto st = parse_response(raw, false, r);
  REQUIRE(st);
  CHECK(*st == ParseState::kComplete);
  CHECK(r.body == "Wikipedia in\r\n\r\nchunks.");

  auto early = parse_response(std::string_view(raw).substr(0, 60), true, r);
  CHECK_FALSE(early);
}

TEST_CASE("http response: no length, body ends with the connection", "[ctl][http]") {
  const std::string raw = "HTTP/1.0 200 OK\r\n\r\nhello";
  HttpResponse r;
  auto st = parse_response(raw, false, r);
  REQUIRE(st);
  CHECK(*st == ParseState::kIncomplete);
  st = parse_response(raw, true, r);
  REQUIRE(st);
  CHECK(*st == ParseState::kComplete);
  CHECK(r.body == "hello");
}

TEST_CASE("http response: malformed or cut short", "[ctl][http]") {
  HttpResponse r;
  CHECK_FALSE(parse_response("SSH-2.0-OpenSSH_9.2\r\n", false, r));
  CHECK_FALSE(parse_response("HTTP/2 200\r\n\r\n", false, r));
  CHECK_FALSE(parse_response("HTTP/1.1 abc OK\r\n\r\n", false, r));
  CHECK_FALSE(parse_response("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", false, r));
  CHECK_FALSE(parse_response("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false, r));
  CHECK_FALSE(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, r));
  auto cut = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true, r);
  REQUIRE_FALSE(cut);
  CHECK_THAT(cut.status().message(), Catch::Contains("3 of 10"));
  CHECK_FALSE(parse_response("HTTP/1.1 200 OK\r\nContent-", true, r));
}
