// isthmusctl --url parsing.
#include "ctl/url.h"

#include <catch2/catch.hpp>

using namespace isthmus::ctl;

TEST_CASE("url: accepted forms", "[ctl][url]") {
  auto u = parse_url("http://127.0.0.1:7480");
  REQUIRE(u);
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == 7480);
  CHECK(u->base_path.empty());
  CHECK(u->to_string() == "http://127.0.0.1:7480");
  CHECK(u->target("/v1/lag") == "/v1/lag");

  u = parse_url("HTTP://region-a.example.net");
  REQUIRE(u);
  CHECK(u->host == "region-a.example.net");
  CHECK(u->port == 80);

  u = parse_url("localhost:9000");  // scheme optional
  REQUIRE(u);
  CHECK(u->host == "localhost");
  CHECK(u->port == 9000);

  u = parse_url("http://[::1]:7480/");
  REQUIRE(u);
  CHECK(u->host == "::1");
  CHECK(u->authority() == "[::1]:7480");
  CHECK(u->base_path.empty());
  CHECK(u->to_string() == "http://[::1]:7480");

  u = parse_url("http://proxy:8080/isthmus/iad/");  // behind a path prefix
  REQUIRE(u);
  CHECK(u->base_path == "/isthmus/iad");
  CHECK(u->target("/healthz") == "/isthmus/iad/healthz");
}

TEST_CASE("url: refused forms name the problem", "[ctl][url]") {
  struct Bad {
    const char* text;
    const char* message;
  };
  const Bad cases[] = {
      {"https://127.0.0.1:7480", "https is not supported"},
      {"ftp://host", "unsupported scheme 'ftp'"},
      {"http://", "empty host"},
      {"http://:7480", "empty host"},
      {"http://host:", "empty port"},
      {"http://host:0", "port must be a number in 1..65535"},
      {"http://host:65536", "port must be a number in 1..65535"},
      {"http://host:80x", "port must be a number in 1..65535"},
      {"http://::1:7480", "must be in brackets"},
      {"http://[::1", "missing ']'"},
      {"http://[]:80", "empty host"},
      {"http://[zz]:80", "invalid IPv6 address"},
      {"http://[::1]x", "unexpected text after ']'"},
      {"http://user@host", "user information"},
      {"http://host/path?x=1", "query or fragment"},
      {"http://ho st", "invalid character in host"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto u = parse_url(c.text);
    REQUIRE_FALSE(u);
    CHECK_THAT(u.status().message(), Catch::Contains(c.message));
    CHECK_THAT(u.status().message(), Catch::Contains(c.text));
  }
}
