// RequestParser: every byte split of valid input, pipelining, limits and
// malformed input.
#include "http/request_parser.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using isthmus::http::ParserLimits;
using isthmus::http::Request;
using isthmus::http::RequestParser;

namespace {

// A string literal with embedded NULs, whole.
template <size_t N>
std::string lit(const char (&s)[N]) {
  return std::string(s, N - 1);
}


const std::string kPipeline =
    "GET /v1/lag?stream=COVENANT%20X&verbose HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "X-Trace:   abc  \r\n"
    "Accept: */*\r\n"
    "\r\n"
    "POST /v1/streams/S/rebuild HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Content-Length: 11\r\n"
    "\r\n"
    "hello world"
    "PUT /chunked HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "5\r\nhello\r\n"
    "6;ext=1\r\n world\r\n"
    "0\r\n"
    "\r\n"
    "GET /last HTTP/1.1\r\n"
    "Connection: close\r\n"
    "\r\n";

std::vector<Request> drain(RequestParser& p) {
  std::vector<Request> out;
  while (auto r = p.next()) out.push_back(std::move(*r));
  return out;
}

void check_pipeline(const std::vector<Request>& rs) {
  REQUIRE(rs.size() == 4);
  CHECK(rs[0].method == "GET");
  CHECK(rs[0].target == "/v1/lag?stream=COVENANT%20X&verbose");
  CHECK(rs[0].path == "/v1/lag");
  CHECK(rs[0].query == "stream=COVENANT%20X&verbose");
  CHECK(rs[0].query_param("stream") == std::optional<std::string>("COVENANT X"));
  CHECK(rs[0].query_param("verbose") == std::optional<std::string>(""));
  CHECK_FALSE(rs[0].query_param("nope").has_value());
  CHECK(rs[0].headers.get("x-trace") == "abc");
  CHECK(rs[0].headers.get("HOST") == "localhost");
  CHECK(rs[0].headers.size() == 3);
  CHECK(rs[0].body.empty());
  CHECK(rs[0].keep_alive);

  CHECK(rs[1].method == "POST");
  CHECK(rs[1].path == "/v1/streams/S/rebuild");
  CHECK(rs[1].query.empty());
  CHECK(rs[1].body == "hello world");
  CHECK(rs[1].keep_alive);

  CHECK(rs[2].method == "PUT");
  CHECK(rs[2].body == "hello world");

  CHECK(rs[3].path == "/last");
  CHECK_FALSE(rs[3].keep_alive);
  CHECK(rs[3].wants_close());
}

struct Outcome {
  int status;
  size_t requests;
};

Outcome parse(const std::string& input, ParserLimits limits = {}, size_t step = 0) {
  RequestParser p(limits);
  if (step == 0) {
    p.feed(input);
  } else {
    for (size_t i = 0; i < input.size(); i += step) p.feed(std::string_view(input).substr(i, step));
  }
  return {p.error().status, drain(p).size()};
}

}  // namespace

TEST_CASE("parser: pipelined requests in one feed", "[http][parser]") {
  RequestParser p;
  REQUIRE(p.feed(kPipeline));
  CHECK_FALSE(p.failed());
  CHECK_FALSE(p.in_progress());
  CHECK(p.closed());
  check_pipeline(drain(p));
}

TEST_CASE("parser: every two-way byte split gives the same requests", "[http][parser]") {
  for (size_t cut = 0; cut <= kPipeline.size(); ++cut) {
    INFO("cut at " << cut);
    RequestParser p;
    REQUIRE(p.feed(std::string_view(kPipeline).substr(0, cut)));
    REQUIRE(p.feed(std::string_view(kPipeline).substr(cut)));
    check_pipeline(drain(p));
  }
}

TEST_CASE("parser: byte-at-a-time and three-way splits", "[http][parser]") {
  {
    RequestParser p;
    for (char c : kPipeline) REQUIRE(p.feed(std::string_view(&c, 1)));
    check_pipeline(drain(p));
  }
  // Three pieces, with a coarse stride to keep the run fast.
  for (size_t a = 0; a <= kPipeline.size(); a += 7) {
    for (size_t b = a; b <= kPipeline.size(); b += 5) {
      RequestParser p;
      std::string_view s(kPipeline);
      REQUIRE(p.feed(s.substr(0, a)));
      REQUIRE(p.feed(s.substr(a, b - a)));
      REQUIRE(p.feed(s.substr(b)));
      auto rs = drain(p);
      REQUIRE(rs.size() == 4);
      CHECK(rs[2].body == "hello world");
    }
  }
}

TEST_CASE("parser: requests come out as soon as complete", "[http][parser]") {
  RequestParser p;
  REQUIRE(p.feed("GET /a HTTP/1.1\r\n\r\nGET /b HT"));
  CHECK(p.pending() == 1);
  CHECK(p.in_progress());
  CHECK_FALSE(p.headers_complete());
  CHECK(p.next()->path == "/a");
  CHECK_FALSE(p.has_request());
  REQUIRE(p.feed("TP/1.1\r\nContent-Length: 2\r\n\r\nx"));
  CHECK(p.headers_complete());
  REQUIRE(p.feed("y"));
  auto r = p.next();
  REQUIRE(r);
  CHECK(r->path == "/b");
  CHECK(r->body == "xy");
  CHECK_FALSE(p.in_progress());
}

TEST_CASE("parser: keep-alive rules", "[http][parser]") {
  auto one = [](const std::string& s) {
    RequestParser p;
    REQUIRE(p.feed(s));
    auto r = p.next();
    REQUIRE(r);
    return *r;
  };
  CHECK(one("GET / HTTP/1.1\r\n\r\n").keep_alive);
  CHECK_FALSE(one("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
  CHECK_FALSE(one("GET / HTTP/1.0\r\n\r\n").keep_alive);
  Request r10 = one("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(r10.keep_alive);
  CHECK(r10.http_minor == 0);

  // Nothing after a closing request is parsed, not even garbage.
  RequestParser p;
  REQUIRE(p.feed("GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET /x HTTP/1.1\r\n\r\n\x01\x02"));
  CHECK(p.closed());
  CHECK(p.pending() == 1);
  CHECK_FALSE(p.failed());
}

TEST_CASE("parser: target forms", "[http][parser]") {
  RequestParser p;
  REQUIRE(p.feed("GET http://example.com:8080/x/y?z=1 HTTP/1.1\r\n\r\n"
                 "OPTIONS * HTTP/1.1\r\n\r\n"
                 "GET /frag#x HTTP/1.1\r\n\r\n"));
  auto rs = drain(p);
  REQUIRE(rs.size() == 3);
  CHECK(rs[0].path == "/x/y");
  CHECK(rs[0].query == "z=1");
  CHECK(rs[1].path == "*");
  CHECK(rs[2].path == "/frag");
}

TEST_CASE("parser: malformed requests are 400", "[http][parser]") {
  const std::vector<std::string> bad = {
      "FOO / HTTP/1.1\r\n\r\n",                                     // bad method
      "get / HTTP/1.1\r\n\r\n",                                     // lower-case method
      "GET / HTTP/9.x\r\n\r\n",                                     // bad version
      "GET / HTTX/1.1\r\n\r\n",                                     // bad protocol
      "GET / HTTP/1.1\r\nNoColon\r\n\r\n",                          // header without ':'
      "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",                      // space in name
      "GET / HTTP/1.1\r\n: empty\r\n\r\n",                          // empty name
      lit("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"),         // NUL in value
      lit("GET /a\0b HTTP/1.1\r\n\r\n"),                // NUL in target
      lit("\0GET / HTTP/1.1\r\n\r\n"),                  // NUL first
      "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",                        // control char
      "GET nopath HTTP/1.1\r\n\r\n",                                // not origin-form
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",              // a TLS ClientHello
      "GET / HTTP/1.1\r\r\r\n",
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    INFO("case " << i);
    for (size_t step : {size_t{0}, size_t{1}, size_t{3}}) {
      Outcome o = parse(bad[i], {}, step);
      CHECK(o.status == 400);
      CHECK(o.requests == 0);
    }
  }
}

TEST_CASE("parser: unsupported features", "[http][parser]") {
  CHECK(parse("CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n").status == 501);
  CHECK(parse("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").status ==
        501);
  CHECK(parse("GET / HTTP/2.0\r\n\r\n").status == 505);
}

TEST_CASE("parser: errors are sticky and keep earlier requests", "[http][parser]") {
  RequestParser p;
  CHECK_FALSE(p.feed("GET /ok HTTP/1.1\r\n\r\nGARBAGE\r\n\r\n"));
  CHECK(p.failed());
  CHECK(p.error().status == 400);
  CHECK_FALSE(p.error().reason.empty());
  CHECK(p.pending() == 1);
  CHECK(p.next()->path == "/ok");
  CHECK_FALSE(p.feed("GET / HTTP/1.1\r\n\r\n"));
  CHECK_FALSE(p.has_request());
}

TEST_CASE("parser: header limits are 431", "[http][parser]") {
  ParserLimits lim;
  lim.max_header_bytes = 1024;
  lim.max_header_count = 10;

  const std::string big = "GET / HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n";
  for (size_t step : {size_t{0}, size_t{1}, size_t{100}, size_t{1023}, size_t{1024}}) {
    INFO("step " << step);
    CHECK(parse(big, lim, step).status == 431);
  }
  // A long target counts too.
  CHECK(parse("GET /" + std::string(2000, 'a') + " HTTP/1.1\r\n\r\n", lim).status == 431);
  // Never-ending header block, fed in pieces: stops at the limit.
  {
    RequestParser p(lim);
    bool ok = p.feed("GET / HTTP/1.1\r\n");
    for (int i = 0; ok && i < 1000; ++i) ok = p.feed("X-A: b\r\n");
    CHECK_FALSE(ok);
    CHECK(p.error().status == 431);
  }
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 11; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  CHECK(parse(many + "\r\n", lim).status == 431);

  // Exactly at the limit is fine; the budget is per request, so a pipeline
  // of requests each just under it is fine too.
  std::string head = "GET / HTTP/1.1\r\nX: ";
  std::string exact = head + std::string(lim.max_header_bytes - head.size() - 4, 'v') + "\r\n\r\n";
  REQUIRE(exact.size() == lim.max_header_bytes);
  CHECK(parse(exact, lim).status == 0);
  CHECK(parse(exact, lim, 1).requests == 1);
  CHECK(parse(exact.substr(0, exact.size() - 4) + "v\r\n\r\n", lim).status == 431);
  std::string pipeline;
  for (int i = 0; i < 5; ++i) pipeline += exact;
  for (size_t step : {size_t{0}, size_t{1}, size_t{7}}) {
    Outcome o = parse(pipeline, lim, step);
    CHECK(o.status == 0);
    CHECK(o.requests == 5);
  }
}

TEST_CASE("parser: body limits are 413", "[http][parser]") {
  ParserLimits lim;
  lim.max_body_bytes = 100;
  // Declared too large: refused before any body byte arrives.
  CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", lim).status == 413);
  CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999\r\n\r\n", lim).status ==
        413);
  CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'b'), lim)
            .requests == 1);
  // Chunked: refused as the data crosses the limit.
  std::string chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 11; ++i) chunked += "a\r\n0123456789\r\n";
  chunked += "0\r\n\r\n";
  CHECK(parse(chunked, lim).status == 413);
  CHECK(parse(chunked, lim, 1).status == 413);
}

TEST_CASE("parser: end of input", "[http][parser]") {
  {
    RequestParser p;
    REQUIRE(p.feed("GET / HTTP/1.1\r\nHost:"));
    CHECK_FALSE(p.finish());
    CHECK(p.error().status == 400);
  }
  {
    RequestParser p;
    REQUIRE(p.feed("GET / HTTP/1.1\r\n\r\n"));
    CHECK(p.finish());
    CHECK(p.pending() == 1);
  }
}

TEST_CASE("parser: Expect: 100-continue", "[http][parser]") {
  RequestParser p;
  REQUIRE(p.feed("POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"));
  CHECK(p.take_expect_continue());
  CHECK_FALSE(p.take_expect_continue());
  REQUIRE(p.feed("abc"));
  CHECK(p.next()->body == "abc");
}
