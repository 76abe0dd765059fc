// The load generator's payloads (tests/tools/loadgen/payload.h): stamped
// payloads are valid JSON, of the promised size, and give back exactly the
// send time they were stamped with; anything else has no stamp.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "payload.h"

using loadgen::PayloadKind;
using loadgen::Payloads;
using loadgen::read_stamp;

namespace {
constexpr int64_t kStamp = 1795763633913822850;  // 2026-11-27, 19 digits
}

TEST_CASE("bytes payloads are JSON objects of exactly the size, carrying the stamp") {
  for (long size : {64L, 128L, 1024L}) {
    Payloads p(PayloadKind::kBytes, size);
    std::set<std::string> distinct;
    for (long i = 0; i < 100; ++i) {
      std::string s = p.make(i, kStamp + i);
      CAPTURE(size, i, s);
      REQUIRE(static_cast<long>(s.size()) == size);
      auto j = nlohmann::json::parse(s);
      REQUIRE(j["t"].get<int64_t>() == kStamp + i);
      REQUIRE(j["p"].is_string());
      REQUIRE(read_stamp(s) == kStamp + i);
      distinct.insert(s.substr(25));
    }
    REQUIRE(distinct.size() == 100);  // random bodies, not one repeated
  }
  // Sizes below 64 are raised to 64 (the stamp and the braces must fit).
  REQUIRE(Payloads(PayloadKind::kBytes, 10).make(0, kStamp).size() == 64);
}

TEST_CASE("json_events payloads are corpus events with the stamp as first member") {
  Payloads p(PayloadKind::kJsonEvents, 0);
  for (long i = 0; i < 100; ++i) {
    std::string s = p.make(i, kStamp);
    CAPTURE(i, s);
    auto j = nlohmann::json::parse(s);
    REQUIRE(j.is_object());
    REQUIRE(j["t"].get<int64_t>() == kStamp);
    REQUIRE(j.size() > 5);  // the event's own fields are all there
    REQUIRE(s.size() > 250);
    REQUIRE(read_stamp(s) == kStamp);
  }
}

TEST_CASE("the stamp is the publisher's wall clock, and only stamped payloads have one") {
  const int64_t now = loadgen::realtime_ns();
  const int64_t sys = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  REQUIRE(std::abs(sys - now) < 1'000'000'000);
  REQUIRE(read_stamp(Payloads(PayloadKind::kBytes, 128).make(7, now)) == now);

  REQUIRE_FALSE(read_stamp(Payloads(PayloadKind::kCountry, 0).make(1, now)));
  REQUIRE_FALSE(read_stamp(""));
  REQUIRE_FALSE(read_stamp("{\"t\":12345}"));                           // too short
  REQUIRE_FALSE(read_stamp("{\"t\":17957636339138228x0,\"p\":\"\"}"));  // not digits
  REQUIRE_FALSE(read_stamp("{\"t\":1795763633913822850 \"p\":\"\"}"));  // no comma
  std::string ok = Payloads(PayloadKind::kBytes, 128).make(0, kStamp);
  REQUIRE(read_stamp(ok.substr(0, 25)) == kStamp);  // the stamp alone suffices
  REQUIRE_FALSE(read_stamp(ok.substr(0, 24)));
}
