// Unit tests: JetStream's RFC 3339 times as Unix ns (util/rfc3339.h), the one
// parser the daemon uses for stored-message times (the leader's ages, the
// store times of foreign messages). Expected values computed independently
// (Python's datetime).
#include "util/rfc3339.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

using isthmus::util::parse_rfc3339_ns;

namespace {
constexpr int64_t kBase = 1795763525000000000;  // 2026-11-27T07:12:05Z
}

TEST_CASE("RFC 3339: fractions of 0 to 9 digits, and more", "[rfc3339]") {
  CHECK(parse_rfc3339_ns("1970-01-01T00:00:00Z") == int64_t{0});
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05Z") == kBase);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.1Z") == kBase + 100000000);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.12Z") == kBase + 120000000);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.123Z") == kBase + 123000000);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.1234Z") == kBase + 123400000);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.12345Z") == kBase + 123450000);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.123456Z") == kBase + 123456000);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.1234567Z") == kBase + 123456700);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.12345678Z") == kBase + 123456780);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.123456789Z") == kBase + 123456789);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.000000001Z") == kBase + 1);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.750546034Z") == kBase + 750546034);
  // Digits below a nanosecond are dropped, not rounded.
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.1234567899Z") == kBase + 123456789);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05.99999999999999Z") == kBase + 999999999);
}

TEST_CASE("RFC 3339: Z and +hh:mm / -hh:mm offsets", "[rfc3339]") {
  CHECK(parse_rfc3339_ns("2026-11-27t07:12:05z") == kBase);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05+00:00") == kBase);
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:05-00:00") == kBase);
  CHECK(parse_rfc3339_ns("2026-11-27T08:12:05.75+01:00") == kBase + 750000000);
  CHECK(parse_rfc3339_ns("2026-11-27T12:42:05+05:30") == kBase);
  CHECK(parse_rfc3339_ns("2026-11-27T02:12:05.5-05:00") == kBase + 500000000);
  // An offset that crosses midnight and a month end.
  CHECK(parse_rfc3339_ns("2026-12-01T06:00:00+14:00") == parse_rfc3339_ns("2026-11-30T16:00:00Z"));
  CHECK(parse_rfc3339_ns("2026-11-30T20:00:00-12:00") == parse_rfc3339_ns("2026-12-01T08:00:00Z"));
}

TEST_CASE("RFC 3339: calendar, before 1970, leap second, range", "[rfc3339]") {
  CHECK(parse_rfc3339_ns("2024-02-29T12:00:00Z") == int64_t{1709208000000000000});
  CHECK(parse_rfc3339_ns("2000-02-29T23:59:59.5Z") == int64_t{951868799500000000});
  CHECK(parse_rfc3339_ns("1969-12-31T23:59:59Z") == int64_t{-1000000000});
  CHECK(parse_rfc3339_ns("1969-12-31T23:59:59.999999999Z") == int64_t{-1});
  CHECK(parse_rfc3339_ns("2026-11-27T07:12:60Z") == int64_t{1795763580000000000});  // = 07:13:00
  CHECK(parse_rfc3339_ns("2262-04-11T23:47:16.854775807Z") == INT64_MAX);
  CHECK(parse_rfc3339_ns("1677-09-21T00:12:44Z") == int64_t{-9223372036000000000});
}

TEST_CASE("RFC 3339: malformed input is refused", "[rfc3339]") {
  for (const char* bad : {
           "",
           "yesterday",
           "2026-11-27",
           "2026-11-27T07:12:05",            // no offset
           "2026-11-27 07:12:05Z",           // space for T
           "2026/11/27T07:12:05Z",
           "2026-11-27T07-12-05Z",
           "26-11-27T07:12:05Z",
           "2026-1-27T07:12:05Z",
           "2026-11-27T7:12:05Z",
           "2026-11-27T07:12:05.Z",          // a dot without digits
           "2026-11-27T07:12:05.12a4Z",
           "2026-11-27T07:12:05,5Z",
           "2026-11-27T07:12:05Zx",          // trailing text
           "2026-11-27T07:12:05Z ",
           "2026-11-27T07:12:05+01:00junk",
           "2026-11-27T07:12:05+0100",       // offset without colon
           "2026-11-27T07:12:05+01",
           "2026-11-27T07:12:05+1:00",
           "2026-11-27T07:12:05+24:00",
           "2026-11-27T07:12:05+01:60",
           "2026-11-27T07:12:05UTC",
           "2026-00-27T07:12:05Z",
           "2026-13-27T07:12:05Z",
           "2026-11-00T07:12:05Z",
           "2026-11-31T07:12:05Z",           // November has 30 days
           "2026-02-29T07:12:05Z",           // not a leap year
           "1900-02-29T07:12:05Z",           // not a leap year (century)
           "2026-11-27T24:00:00Z",
           "2026-11-27T07:60:05Z",
           "2026-11-27T07:12:61Z",
           "-026-11-27T07:12:05Z",
           "2262-04-11T23:47:16.854775808Z",  // one ns past int64
           "9999-12-31T23:59:59Z",
           "0001-01-01T00:00:00Z",
       }) {
    INFO(bad);
    CHECK_FALSE(parse_rfc3339_ns(bad).has_value());
  }
  // Embedded NUL: the whole view counts, not a C string.
  const std::string nul("2026-11-27T07:12:05Z\0", 21);
  CHECK_FALSE(parse_rfc3339_ns(nul).has_value());
}

TEST_CASE("format_rfc3339_ns writes UTC with nine fraction digits, and parses back", "[rfc3339]") {
  using isthmus::util::format_rfc3339_ns;
  CHECK(format_rfc3339_ns(0) == "1970-01-01T00:00:00.000000000Z");
  CHECK(format_rfc3339_ns(1'795'967'487'082'956'592) == "2026-11-29T15:51:27.082956592Z");
  CHECK(format_rfc3339_ns(-1) == "1969-12-31T23:59:59.999999999Z");
  for (int64_t ns : {int64_t{1}, int64_t{1'718'000'000'123'456'789}, int64_t{951'782'400'000'000'000}}) {
    CHECK(parse_rfc3339_ns(format_rfc3339_ns(ns)) == ns);
  }
}
