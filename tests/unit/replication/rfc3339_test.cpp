// Unit tests: JetStream's RFC 3339 times as Unix ns (used for the age of the
// oldest unreplicated message, looked up with MSG.GET).
#include <catch2/catch.hpp>

#include "nats/jsapi.h"

using isthmus::nats::parse_rfc3339_ns;

TEST_CASE("RFC 3339 times from JetStream parse to Unix ns", "[rfc3339]") {
  int64_t ns = 0;
  REQUIRE(parse_rfc3339_ns("1970-01-01T00:00:00Z", ns));
  CHECK(ns == 0);
  REQUIRE(parse_rfc3339_ns("2026-11-27T07:12:05.750546034Z", ns));
  CHECK(ns == 1795763525750546034);
  REQUIRE(parse_rfc3339_ns("2000-02-29T23:59:59.5Z", ns));
  CHECK(ns == 951868799500000000);
  REQUIRE(parse_rfc3339_ns("2026-11-27T08:12:05.75+01:00", ns));
  CHECK(ns == 1795763525750000000);
  REQUIRE(parse_rfc3339_ns("2026-11-27T07:12:05.1234567891Z", ns));  // digits beyond ns dropped
  CHECK(ns == 1795763525123456789);
  for (const char* bad : {"", "2026-11-27", "2026-11-27T07:12:05", "2026-13-27T07:12:05Z", "2026-11-27T07:12:05.Z",
                          "2026-11-27T07:12:05Zx", "2026/11/27T07:12:05Z", "2026-11-27T07:12:05+0100"}) {
    INFO(bad);
    CHECK_FALSE(parse_rfc3339_ns(bad, ns));
  }
}
