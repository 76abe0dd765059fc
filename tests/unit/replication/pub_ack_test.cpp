// Unit tests: JetStream publish acknowledgements as nats-server 2.9.10 writes
// them (the follower reads one per checkpoint, tens of thousands a second).
#include <catch2/catch.hpp>

#include "nats/pub_ack.h"

using isthmus::nats::parse_pub_ack;
using isthmus::nats::wrong_last_sequence_of;

TEST_CASE("plain acknowledgements are read without a JSON tree, exactly", "[pub_ack]") {
  auto a = parse_pub_ack(R"({"stream":"ORDERS", "seq":180856})");
  REQUIRE(a);
  CHECK(a->stream == "ORDERS");
  CHECK(a->seq == 180856);
  CHECK_FALSE(a->duplicate);
  CHECK_FALSE(a->refused());
  auto d = parse_pub_ack(R"({"stream":"S", "domain":"hub", "seq":18446744073709551615})");
  REQUIRE(d);
  CHECK(d->seq == 18446744073709551615ull);
  CHECK(d->stream == "S");
}

TEST_CASE("duplicates and refusals are recognised", "[pub_ack]") {
  auto d = parse_pub_ack(R"({"stream":"S", "seq":7,"duplicate": true})");
  REQUIRE(d);
  CHECK(d->duplicate);
  CHECK(d->seq == 7);
  auto e = parse_pub_ack(
      R"({"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 2"},"stream":"S","seq":0})");
  REQUIRE(e);
  CHECK(e->refused());
  CHECK(e->err_code == 10071);
  CHECK(e->error == "wrong last sequence: 2");
  uint64_t last = 0;
  REQUIRE(wrong_last_sequence_of(e->error, last));
  CHECK(last == 2);
  auto big = parse_pub_ack(R"({"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}})");
  REQUIRE(big);
  CHECK(big->err_code == 10054);
}

TEST_CASE("garbage is not an acknowledgement", "[pub_ack]") {
  CHECK_FALSE(parse_pub_ack(""));
  CHECK_FALSE(parse_pub_ack("{"));
  CHECK_FALSE(parse_pub_ack(R"({"stream":"S"})"));
  CHECK_FALSE(parse_pub_ack(R"({"stream":"S", "seq":-1})"));
  CHECK_FALSE(parse_pub_ack("[1,2]"));
  uint64_t v = 0;
  CHECK_FALSE(wrong_last_sequence_of("wrong last sequence: ", v));
  CHECK_FALSE(wrong_last_sequence_of("wrong last sequence: 12x", v));
  CHECK_FALSE(wrong_last_sequence_of("maximum messages exceeded", v));
}
