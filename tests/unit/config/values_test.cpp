// Value syntaxes: durations, sizes, host:port, names, URLs.
#include <catch2/catch.hpp>

#include "config/values.h"

using namespace isthmus::config;
using std::chrono::milliseconds;

TEST_CASE("durations parse to whole milliseconds", "[config][values]") {
  struct Case {
    const char* text;
    int64_t ms;
  };
  const Case good[] = {
      {"250ms", 250}, {"2s", 2000},   {"1m", 60000},  {"1h", 3600000}, {"1.5s", 1500},
      {"0.25s", 250}, {"1m30s", 90000}, {"1h1m1s1ms", 3661001}, {"0ms", 0}, {"10.000s", 10000},
  };
  for (const Case& c : good) {
    INFO(c.text);
    auto r = parse_duration(c.text);
    REQUIRE(r.is_ok());
    CHECK(r->count() == c.ms);
  }
  struct Bad {
    const char* text;
    const char* message;
  };
  const Bad bad[] = {
      {"", "empty"},
      {"2", "missing unit"},
      {"2sec", "unknown unit \"sec\""},
      {"2 s", "missing unit"},
      {"-1s", "expected a number"},
      {"1.s", "expected a number"},
      {".5s", "expected a number"},
      {"1.0005s", "not a whole number of milliseconds"},
      {"1us", "unknown unit \"us\""},
      {"99999999999h", "too large"},
      {"1s ", "expected a number"},
  };
  for (const Bad& b : bad) {
    INFO(b.text);
    auto r = parse_duration(b.text);
    REQUIRE_FALSE(r.is_ok());
    CHECK_THAT(r.status().message(), Catch::Contains(b.message));
  }
}

TEST_CASE("sizes parse binary and decimal units", "[config][values]") {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  const Case good[] = {
      {"0", 0},
      {"4096", 4096},
      {"100B", 100},
      {"64KiB", 65536},
      {"8MiB", 8u << 20},
      {"1GiB", 1ull << 30},
      {"2TiB", 2ull << 40},
      {"100KB", 100000},
      {"100kB", 100000},
      {"10MB", 10000000},
      {"1GB", 1000000000},
      {"1.5KiB", 1536},
      {"64 KiB", 65536},
      {"0.5MiB", 512 * 1024},
  };
  for (const Case& c : good) {
    INFO(c.text);
    auto r = parse_size(c.text);
    REQUIRE(r.is_ok());
    CHECK(*r == c.bytes);
  }
  struct Bad {
    const char* text;
    const char* message;
  };
  const Bad bad[] = {
      {"", "empty"},
      {"MiB", "expected a number"},
      {"32Mb", "unknown unit \"Mb\""},
      {"32mib", "unknown unit"},
      {"1.1B", "not a whole number of bytes"},
      {"0.1KiB", "not a whole number of bytes"},
      {"-1", "expected a number"},
      {"99999999999TiB", "too large"},
      {"64  KiB", "unknown unit"},
  };
  for (const Bad& b : bad) {
    INFO(b.text);
    auto r = parse_size(b.text);
    REQUIRE_FALSE(r.is_ok());
    CHECK_THAT(r.status().message(), Catch::Contains(b.message));
  }
}

TEST_CASE("format_duration and format_size are exact and short", "[config][values]") {
  CHECK(format_duration(milliseconds(2000)) == "2s");
  CHECK(format_duration(milliseconds(250)) == "250ms");
  CHECK(format_duration(milliseconds(1500)) == "1500ms");
  CHECK(format_duration(milliseconds(60000)) == "1m");
  CHECK(format_duration(milliseconds(7200000)) == "2h");
  CHECK(format_duration(milliseconds(0)) == "0ms");
  CHECK(format_size(65536) == "64KiB");
  CHECK(format_size(8u << 20) == "8MiB");
  CHECK(format_size(1ull << 30) == "1GiB");
  CHECK(format_size(1000) == "1000 bytes");
  CHECK(format_size(1) == "1 byte");
  CHECK(format_size(0) == "0 bytes");
  // Round trips.
  for (uint64_t n : {1024ull, 4096ull, 65536ull, 32ull << 20, 1000ull}) {
    std::string s = format_size(n);
    if (s.find(' ') != std::string::npos) s = s.substr(0, s.find(' '));
    CHECK(*parse_size(s) == n);
  }
}

TEST_CASE("host:port parsing", "[config][values]") {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
    const char* round_trip;
  };
  const Case good[] = {
      {"127.0.0.1:7422", "127.0.0.1", 7422, "127.0.0.1:7422"},
      {"[::1]:7422", "::1", 7422, "[::1]:7422"},
      {"[::]:1", "::", 1, "[::]:1"},
      {"[fe80::1%eth0]:80", nullptr, 0, nullptr},  // zone ids are refused (see below)
      {"localhost:65535", "localhost", 65535, "localhost:65535"},
      {"region-a.example.net:7422", "region-a.example.net", 7422, "region-a.example.net:7422"},
      {"0.0.0.0:7480", "0.0.0.0", 7480, "0.0.0.0:7480"},
  };
  for (const Case& c : good) {
    if (c.host == nullptr) continue;
    INFO(c.text);
    auto r = parse_host_port(c.text);
    REQUIRE(r.is_ok());
    CHECK(r->host == c.host);
    CHECK(r->port == c.port);
    CHECK(r->to_string() == c.round_trip);
  }
  struct Bad {
    const char* text;
    const char* message;
  };
  const Bad bad[] = {
      {"", "empty"},
      {"localhost", "missing port"},
      {":7422", "missing host"},
      {"::1:7422", "must be in brackets"},
      {"[::1]7422", "missing port"},
      {"[::1", "missing ']'"},
      {"[127.0.0.1]:7422", "not an IPv6 address"},
      {"[fe80::1%eth0]:80", "not an IPv6 address"},
      {"127.0.0.1:0", "port must be 1..65535"},
      {"127.0.0.1:65536", "port must be 1..65535"},
      {"127.0.0.1:", "port must be 1..65535"},
      {"127.0.0.1:http", "port must be a number"},
      {"127.0.0.1:+80", "port must be a number"},
      {"300.1.1.1:7422", "not an IPv4 address"},
      {"bad_host:1", "not a valid host name"},
      {"-bad.example:1", "not a valid host name"},
      {"a..b:1", "not a valid host name"},
  };
  for (const Bad& b : bad) {
    INFO(b.text);
    auto r = parse_host_port(b.text);
    REQUIRE_FALSE(r.is_ok());
    CHECK_THAT(r.status().message(), Catch::Contains(b.message));
  }
}

TEST_CASE("region and stream names, NATS URLs", "[config][values]") {
  for (const char* ok : {"iad", "ams", "syd", "eu-west_1", "0", "a2345678901234567890123456789012"}) {
    INFO(ok);
    CHECK(check_region_name(ok).is_ok());
  }
  for (const char* bad : {"", "IAD", "-iad", "_x", "i.ad", "i ad", "a23456789012345678901234567890123"}) {
    INFO(bad);
    CHECK_FALSE(check_region_name(bad).is_ok());
  }
  for (const char* ok : {"COVENANT_COUNTRIES", "ALERTS-INCIDENTS", "s", "ünïcode"}) {
    INFO(ok);
    CHECK(check_stream_name(ok).is_ok());
  }
  CHECK(check_stream_name(std::string(255, 'S')).is_ok());
  CHECK_FALSE(check_stream_name(std::string(256, 'S')).is_ok());
  for (const char* bad : {"", "A.B", "A B", "A*", "A>", "A/B", "A\\B", "A\tB"}) {
    INFO(bad);
    CHECK_FALSE(check_stream_name(bad).is_ok());
  }
  // Whatever the daemon's URL parser and cnats accept (split at the last
  // ':' unless bracketed; an empty port is 4222; host names and zones are
  // the resolver's business).
  for (const char* ok : {"nats://127.0.0.1:4222", "tls://nats.example:4222", "nats://u:p@h:1", "nats://tok@h",
                         "nats://h:4222/", "nats://nats_1:4222", "nats://h:", "nats://[::1]", "nats://[::1]:4222",
                         "nats://fe80::1:4222", "nats://[fe80::1%eth0]:4222", "tls://u:p:q@x@h:4222"}) {
    INFO(ok);
    CHECK(check_nats_url(ok).is_ok());
  }
  for (const char* bad : {"", "127.0.0.1:4222", "http://h:1", "nats://", "nats://:4222", "nats://h 1",
                          "nats://h:4222x", "nats://h:0", "nats://h:99999", "nats://[::1:4222", "nats://[::1]4222"}) {
    INFO(bad);
    CHECK_FALSE(check_nats_url(bad).is_ok());
  }
  // The error names the URL without its secret.
  auto st = check_nats_url("http://isthmus:s3cret@h:1");
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("s3cret") == std::string::npos);
  CHECK(st.message().find("isthmus:***@h:1") != std::string::npos);
  st = check_nats_url("nats://t0ken@h 1");
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("t0ken") == std::string::npos);
}
