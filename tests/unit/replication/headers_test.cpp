// Unit tests for daemon/replication/headers.{h,cpp}: the header rule.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <string>

#include "replication/headers.h"

using namespace isthmus::replication;

namespace {

const Origin kOrigin{.region = "iad", .seq = 4242, .time_ns = 1'718'000'000'123'456'789, .epoch = 3};

// Headers of `h` named `key` (exact), in order.
std::vector<std::string> values_of(const Headers& h, std::string_view key) {
  std::vector<std::string> out;
  for (const auto& [k, v] : h)
    if (k == key) out.push_back(v);
  return out;
}

size_t count_ci(const Headers& h, std::string_view key) {
  return static_cast<size_t>(std::count_if(h.begin(), h.end(), [&](const auto& kv) {
    return kv.first.size() == key.size() &&
           std::equal(kv.first.begin(), kv.first.end(), key.begin(),
                      [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) ==
                                                  std::tolower(static_cast<unsigned char>(b)); });
  }));
}

}  // namespace

TEST_CASE("publish-time headers are recognised case-insensitively", "[headers]") {
  for (const char* k :
       {"Nats-Msg-Id", "nats-msg-id", "NATS-MSG-ID", "Nats-Expected-Stream", "Nats-Expected-Last-Msg-Id",
        "Nats-Expected-Last-Sequence", "Nats-Expected-Last-Subject-Sequence", "nats-expected-last-sequence",
        "NATS-EXPECTED-LAST-SUBJECT-SEQUENCE", "Nats-Expected-Something-New", "Nats-Rollup", "nats-rollup",
        "NATS-ROLLUP"}) {
    INFO(k);
    CHECK(is_publish_time_header(k));
  }
  for (const char* k : {"Nats-Msg-Idx", "Nats-Msg", "X-Nats-Msg-Id", "Nats-Expected", "Nats-Rollupx",
                        "Nats-Stream", "Nats-Sequence", "Content-Type", "", "Isthmus-Orig-Nats-Msg-Id",
                        "Isthmus-Origin-Seq"}) {
    INFO(k);
    CHECK_FALSE(is_publish_time_header(k));
  }
}

TEST_CASE("origin headers are recognised case-insensitively", "[headers]") {
  for (std::string_view k : {kHdrOriginRegion, kHdrOriginSeq, kHdrOriginTime, kHdrEpoch, kHdrFiller})
    CHECK(is_origin_header(k));
  CHECK(is_origin_header("isthmus-origin-seq"));
  CHECK(is_origin_header("ISTHMUS-EPOCH"));
  CHECK_FALSE(is_origin_header("Isthmus-Origin"));
  CHECK_FALSE(is_origin_header("Isthmus-Orig-Nats-Msg-Id"));
  CHECK_FALSE(is_origin_header("Nats-Msg-Id"));
}

TEST_CASE("header names are the documented contract", "[headers]") {
  CHECK(kHdrOriginRegion == "Isthmus-Origin-Region");
  CHECK(kHdrOriginSeq == "Isthmus-Origin-Seq");
  CHECK(kHdrOriginTime == "Isthmus-Origin-Time");
  CHECK(kHdrEpoch == "Isthmus-Epoch");
  CHECK(kHdrFiller == "Isthmus-Filler");
  CHECK(kEscapePrefix == "Isthmus-Orig-");
}

TEST_CASE("publish-time headers travel renamed with Isthmus-Orig-", "[headers]") {
  Headers leader = {{"Nats-Msg-Id", "order-1"},
                    {"Nats-Expected-Stream", "COVENANT_USERS"},
                    {"Nats-Expected-Last-Msg-Id", "order-0"},
                    {"Nats-Expected-Last-Sequence", "41"},
                    {"Nats-Expected-Last-Subject-Sequence", "7"},
                    {"Nats-Rollup", "sub"},
                    {"nats-msg-id", "lower"},
                    {"NATS-EXPECTED-LAST-SEQUENCE", "upper"}};
  auto r = replica_headers(leader, kOrigin);
  for (const auto& [k, v] : leader) {
    INFO(k);
    CHECK(values_of(r, std::string(kEscapePrefix) + k) == std::vector<std::string>{v});
    // The original name is gone, in any case.
    CHECK(count_ci(r, k) == 0);
  }
  for (const auto& [k, v] : r) CHECK_FALSE(is_publish_time_header(k));
}

TEST_CASE("other headers reach the replica unchanged, repeated values in order", "[headers]") {
  Headers leader = {{"Content-Type", "application/json"},
                    {"X-Trace", "first"},
                    {"Nats-Msg-Id", "m1"},
                    {"X-Trace", "second"},
                    {"X-Empty", ""},
                    {"X-Trace", "third"},
                    {"Nats-Stream", "S"},           // a JetStream header it does not act on at publish
                    {"Isthmus-Orig-Nats-Msg-Id", "older"},  // escaped by an earlier hop: left alone
                    {"x-case", "Value With Spaces"}};
  auto r = replica_headers(leader, kOrigin);
  CHECK(values_of(r, "Content-Type") == std::vector<std::string>{"application/json"});
  CHECK(values_of(r, "X-Trace") == std::vector<std::string>{"first", "second", "third"});
  CHECK(values_of(r, "X-Empty") == std::vector<std::string>{""});
  CHECK(values_of(r, "Nats-Stream") == std::vector<std::string>{"S"});
  CHECK(values_of(r, "x-case") == std::vector<std::string>{"Value With Spaces"});
  CHECK(values_of(r, "Isthmus-Orig-Nats-Msg-Id") == std::vector<std::string>{"m1", "older"});
  // Leader headers first, in their order, then the four origin headers.
  REQUIRE(r.size() == leader.size() + 4);
  for (size_t i = 0; i < leader.size(); ++i) {
    CHECK(r[i].second == leader[i].second);
  }
}

TEST_CASE("origin headers are added with exact values", "[headers]") {
  auto r = replica_headers({}, kOrigin);
  REQUIRE(r.size() == 4);
  CHECK(values_of(r, "Isthmus-Origin-Region") == std::vector<std::string>{"iad"});
  CHECK(values_of(r, "Isthmus-Origin-Seq") == std::vector<std::string>{"4242"});
  CHECK(values_of(r, "Isthmus-Origin-Time") == std::vector<std::string>{"1718000000123456789"});
  CHECK(values_of(r, "Isthmus-Epoch") == std::vector<std::string>{"3"});
  CHECK(values_of(r, "Isthmus-Filler").empty());

  Origin extreme{.region = "syd", .seq = std::numeric_limits<uint64_t>::max(), .time_ns = -5, .epoch = 0};
  auto e = replica_headers({}, extreme);
  CHECK(values_of(e, "Isthmus-Origin-Seq") == std::vector<std::string>{"18446744073709551615"});
  CHECK(values_of(e, "Isthmus-Origin-Time") == std::vector<std::string>{"-5"});
  CHECK(values_of(e, "Isthmus-Epoch") == std::vector<std::string>{"0"});
}

TEST_CASE("leader headers that use origin names are replaced", "[headers]") {
  Headers leader = {{"Isthmus-Origin-Region", "ams"},
                    {"isthmus-origin-seq", "1"},
                    {"ISTHMUS-ORIGIN-TIME", "2"},
                    {"Isthmus-Epoch", "99"},
                    {"Isthmus-Filler", "1"},
                    {"X-Keep", "yes"}};
  auto r = replica_headers(leader, kOrigin);
  CHECK(count_ci(r, "Isthmus-Origin-Region") == 1);
  CHECK(count_ci(r, "Isthmus-Origin-Seq") == 1);
  CHECK(count_ci(r, "Isthmus-Origin-Time") == 1);
  CHECK(count_ci(r, "Isthmus-Epoch") == 1);
  CHECK(count_ci(r, "Isthmus-Filler") == 0);
  CHECK(values_of(r, "Isthmus-Origin-Region") == std::vector<std::string>{"iad"});
  CHECK(values_of(r, "Isthmus-Origin-Seq") == std::vector<std::string>{"4242"});
  CHECK(values_of(r, "Isthmus-Epoch") == std::vector<std::string>{"3"});
  CHECK(values_of(r, "X-Keep") == std::vector<std::string>{"yes"});
  CHECK(r.size() == 5);
}

TEST_CASE("parse_origin reads back what replica_headers wrote", "[headers]") {
  Headers leader = {{"Nats-Msg-Id", "x"}, {"X-A", "1"}};
  for (const Origin& o :
       {kOrigin, Origin{.region = "ams", .seq = 1, .time_ns = 0, .epoch = 0},
        Origin{.region = "syd", .seq = std::numeric_limits<uint64_t>::max(),
               .time_ns = std::numeric_limits<int64_t>::min(), .epoch = std::numeric_limits<uint64_t>::max()},
        Origin{.region = "", .seq = 7, .time_ns = -1, .epoch = 2}}) {
    Origin back;
    REQUIRE(parse_origin(replica_headers(leader, o), back));
    CHECK(back.region == o.region);
    CHECK(back.seq == o.seq);
    CHECK(back.time_ns == o.time_ns);
    CHECK(back.epoch == o.epoch);
  }
}

TEST_CASE("parse_origin is case-insensitive and needs the sequence", "[headers]") {
  Origin o;
  CHECK(parse_origin({{"isthmus-origin-seq", "12"}, {"ISTHMUS-ORIGIN-REGION", "ams"}}, o));
  CHECK(o.seq == 12);
  CHECK(o.region == "ams");

  Origin m;
  CHECK_FALSE(parse_origin({}, m));
  CHECK_FALSE(parse_origin({{"Isthmus-Origin-Region", "iad"}, {"Isthmus-Origin-Time", "5"}, {"Isthmus-Epoch", "1"}},
                           m));
  CHECK_FALSE(parse_origin({{"Isthmus-Origin-Seq", ""}}, m));
  CHECK_FALSE(parse_origin({{"Isthmus-Origin-Seq", "12abc"}}, m));
  CHECK_FALSE(parse_origin({{"Isthmus-Origin-Seq", "-1"}}, m));
  CHECK_FALSE(parse_origin({{"Isthmus-Origin-Seq", " 12"}}, m));
  CHECK_FALSE(parse_origin({{"Isthmus-Origin-Seq", "abc"}}, m));
  CHECK_FALSE(parse_origin({{"Isthmus-Origin-Seq", "-1"}}, m));
  CHECK_FALSE(parse_origin({{"Isthmus-Origin-Seq", "18446744073709551616"}}, m));  // 2^64
  CHECK_FALSE(parse_origin({{"Isthmus-Orig-Isthmus-Origin-Seq", "5"}}, m));
}

TEST_CASE("copied_origin: a copy of another region's message at its own sequence, not a filler", "[headers]") {
  const Headers copy = replica_headers({{"X-A", "1"}}, kOrigin);
  Origin o;
  REQUIRE(copied_origin(copy, kOrigin.seq, o));
  CHECK(o.region == "iad");
  CHECK(o.time_ns == kOrigin.time_ns);
  Origin m;
  CHECK_FALSE(copied_origin(copy, kOrigin.seq + 1, m));  // at another sequence: not a copy of it
  CHECK_FALSE(copied_origin({{"X-A", "1"}}, 1, m));      // a client's message
  Headers filler = copy;
  filler.emplace_back("Isthmus-Filler", "1");
  CHECK_FALSE(copied_origin(filler, kOrigin.seq, m));
  CHECK_FALSE(copied_origin(replica_headers({}, Origin{.region = "", .seq = 7, .time_ns = 5, .epoch = 0}), 7, m));
  CHECK_FALSE(copied_origin(replica_headers({}, Origin{.region = "ams", .seq = 7, .time_ns = 0, .epoch = 0}), 7, m));
  CHECK(m.region.empty());  // (left as it was)
}
