// The NATS protocol codec of the data path (daemon/nats/wire.h): ops split
// anywhere, sizes refused before anything is buffered, garbage refused, and
// what the appenders write.
#include "nats/wire.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using isthmus::Code;
using isthmus::Status;
namespace wire = isthmus::nats::wire;

namespace {

struct Seen {
  wire::ServerOp::Kind kind;
  std::string subject, reply, headers, payload, text;
  uint64_t sid;
};

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Status feed(wire::Reader& r, const std::string& s, std::vector<Seen>& out) {
  return r.feed(bytes(s), [&out](const wire::ServerOp& op) {
    out.push_back(Seen{op.kind, std::string(op.subject), std::string(op.reply), std::string(op.headers),
                       std::string(op.payload), std::string(op.text), op.sid});
    return Status::ok();
  });
}

const std::string kStream =
    "INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n"
    "PING\r\n"
    "MSG a.b 7 11\r\nhello world\r\n"
    "msg a.c 8 reply.to 0\r\n\r\n"
    "HMSG s 9 _INBOX.x.1 28 28\r\nNATS/1.0 404 No Messages\r\n\r\n\r\n"
    "HMSG orders.1 3 $JS.ACK.S.C.1.5.5.1700000000000000000.0 24 29\r\nNATS/1.0\r\nK: v\r\nK: w\r\n\r\nbody!\r\n"
    "+OK\r\n"
    "PONG\r\n"
    "-ERR 'Stale Connection'\r\n";

void check_stream(const std::vector<Seen>& ops) {
  using K = wire::ServerOp::Kind;
  REQUIRE(ops.size() == 9);
  CHECK(ops[0].kind == K::kInfo);
  CHECK(ops[0].text == "{\"server_id\":\"x\",\"max_payload\":1048576}");
  CHECK(ops[1].kind == K::kPing);
  CHECK(ops[2].kind == K::kMsg);
  CHECK(ops[2].subject == "a.b");
  CHECK(ops[2].sid == 7);
  CHECK(ops[2].reply.empty());
  CHECK(ops[2].headers.empty());
  CHECK(ops[2].payload == "hello world");
  CHECK(ops[3].subject == "a.c");
  CHECK(ops[3].reply == "reply.to");
  CHECK(ops[3].payload.empty());
  CHECK(ops[4].headers == "NATS/1.0 404 No Messages\r\n\r\n");
  CHECK(ops[4].payload.empty());
  CHECK(ops[4].reply == "_INBOX.x.1");
  CHECK(ops[5].subject == "orders.1");
  CHECK(ops[5].reply == "$JS.ACK.S.C.1.5.5.1700000000000000000.0");
  CHECK(ops[5].headers == "NATS/1.0\r\nK: v\r\nK: w\r\n\r\n");
  CHECK(ops[5].payload == "body!");
  CHECK(ops[6].kind == K::kOk);
  CHECK(ops[7].kind == K::kPong);
  CHECK(ops[8].kind == K::kErr);
  CHECK(ops[8].text == "Stale Connection");
}

}  // namespace

TEST_CASE("every server op parses, whole or split at any byte", "[nats][wire]") {
  {
    wire::Reader r;
    std::vector<Seen> ops;
    REQUIRE(feed(r, kStream, ops));
    check_stream(ops);
    CHECK(r.buffered() == 0);
  }
  for (size_t cut = 1; cut < kStream.size(); ++cut) {
    wire::Reader r;
    std::vector<Seen> ops;
    REQUIRE(feed(r, kStream.substr(0, cut), ops));
    REQUIRE(feed(r, kStream.substr(cut), ops));
    check_stream(ops);
    CHECK(r.buffered() == 0);
  }
  // One byte at a time.
  wire::Reader r;
  std::vector<Seen> ops;
  for (char c : kStream) REQUIRE(feed(r, std::string(1, c), ops));
  check_stream(ops);
}

TEST_CASE("a message larger than allowed is refused from its control line", "[nats][wire]") {
  wire::Reader r;
  r.set_max_message(1000);
  std::vector<Seen> ops;
  // Only the control line has arrived: refused before the body is awaited.
  Status st = feed(r, "MSG a 1 1001\r\n", ops);
  CHECK(st.code() == Code::kTooLarge);
  CHECK(ops.empty());
  CHECK(r.buffered() == 0);
  // The Reader stays failed.
  CHECK_FALSE(feed(r, "PING\r\n", ops));

  wire::Reader r2;
  r2.set_max_message(1000);
  CHECK(feed(r2, "HMSG a 1 10 5000000000\r\n", ops).code() == Code::kTooLarge);
  wire::Reader r3;
  r3.set_max_message(1000);
  std::string body(1000, 'x');
  REQUIRE(feed(r3, "MSG a 1 1000\r\n" + body + "\r\n", ops));
  CHECK(ops.size() == 1);
}

TEST_CASE("garbage and malformed ops are protocol errors", "[nats][wire]") {
  const std::vector<std::string> bad = {
      "HELLO\r\n",                          // unknown op
      "\x16\x03\x01\x02\x05\r\n",            // a TLS ClientHello's start
      "MSG a\r\n",                          // too few arguments
      "MSG a 1 2 3 4\r\n",                  // too many
      "MSG a x 3\r\nabc\r\n",               // sid not a number
      "MSG a 1 -3\r\n",                     // size not a number
      "MSG a 1 3\r\nabcd\r\n",              // body longer than declared
      "HMSG a 1 9 3\r\nabc\r\n",            // header bigger than total
      "MSG a 1 99999999999999999999\r\n",   // size overflows
  };
  for (const auto& b : bad) {
    wire::Reader r;
    std::vector<Seen> ops;
    INFO(b);
    Status st = feed(r, b, ops);
    CHECK_FALSE(st);
    CHECK(ops.empty());
  }
  // A control line that never ends is refused once it passes the limit.
  wire::Reader r;
  std::vector<Seen> ops;
  std::string junk(wire::kMaxControlLine + 10, 'a');
  CHECK_FALSE(feed(r, junk, ops));
  CHECK(ops.empty());
}

TEST_CASE("a handler's error stops parsing and is returned", "[nats][wire]") {
  wire::Reader r;
  int n = 0;
  Status st = r.feed(bytes("PING\r\nPING\r\nPING\r\n"), [&n](const wire::ServerOp&) {
    return ++n == 2 ? Status(Code::kUnavailable, "stop") : Status::ok();
  });
  CHECK(st.code() == Code::kUnavailable);
  CHECK(n == 2);
}

TEST_CASE("appenders write the client protocol", "[nats][wire]") {
  std::string out;
  wire::append_connect(out, "{\"echo\":false}");
  wire::append_sub(out, "_INBOX.a.*", 3);
  wire::append_unsub(out, 3);
  wire::append_pub(out, "$JS.API.CONSUMER.MSG.NEXT.S.C", "_INBOX.a.1", "{\"batch\":5}");
  wire::append_pub(out, "x", "", "");
  wire::HeaderBlock h;
  h.add("Isthmus-Origin-Seq", "42");
  h.add("K", "a b: c");
  wire::append_hpub(out, "orders.1", "", h.finish(), "body");
  wire::append_ping(out);
  wire::append_pong(out);
  CHECK(out ==
        "CONNECT {\"echo\":false}\r\n"
        "SUB _INBOX.a.* 3\r\n"
        "UNSUB 3\r\n"
        "PUB $JS.API.CONSUMER.MSG.NEXT.S.C _INBOX.a.1 11\r\n{\"batch\":5}\r\n"
        "PUB x 0\r\n\r\n"
        "HPUB orders.1 47 51\r\nNATS/1.0\r\nIsthmus-Origin-Seq: 42\r\nK: a b: c\r\n\r\nbody\r\n"
        "PING\r\nPONG\r\n");
  // clear() starts a new block.
  h.clear();
  CHECK(h.finish() == "NATS/1.0\r\n\r\n");
}

TEST_CASE("header blocks parse back: status, description, repeated keys", "[nats][wire]") {
  std::vector<std::pair<std::string, std::string>> kv;
  auto each = [&kv](std::string_view k, std::string_view v) { kv.emplace_back(k, v); };
  auto hv = wire::parse_headers("NATS/1.0 409 Consumer Deleted\r\nA: 1\r\nA:2\r\nB:  x y \r\n\r\n", each);
  REQUIRE(hv);
  CHECK(hv->status == "409");
  CHECK(hv->description == "Consumer Deleted");
  REQUIRE(kv.size() == 3);
  CHECK(kv[0] == std::pair<std::string, std::string>{"A", "1"});
  CHECK(kv[1] == std::pair<std::string, std::string>{"A", "2"});
  CHECK(kv[2] == std::pair<std::string, std::string>{"B", "x y "});
  kv.clear();
  hv = wire::parse_headers("NATS/1.0 503\r\n\r\n", each);
  REQUIRE(hv);
  CHECK(hv->status == "503");
  CHECK(hv->description.empty());
  CHECK(kv.empty());
  CHECK_FALSE(wire::parse_headers("HTTP/1.1 200\r\n\r\n", each));
  // Malformed lines (no ':', no key) are skipped and counted; keys lose
  // their surrounding spaces.
  kv.clear();
  hv = wire::parse_headers("NATS/1.0\r\nno colon\r\n: no key\r\n Key : v\r\n\r\n", each);
  REQUIRE(hv);
  CHECK(hv->malformed == 2);
  REQUIRE(kv.size() == 1);
  CHECK(kv[0] == std::pair<std::string, std::string>{"Key", "v"});
  CHECK_FALSE(wire::parse_headers("NATS/1.0\r\nA: 1", each));
}

TEST_CASE("what may be written: subjects and headers", "[nats][wire]") {
  CHECK(wire::valid_subject("orders.eu.>"));
  CHECK(wire::valid_subject("$JS.ACK.S.C.1.2.3.4.5"));
  CHECK_FALSE(wire::valid_subject(""));
  CHECK_FALSE(wire::valid_subject("a b"));
  CHECK_FALSE(wire::valid_subject("a\r\nPUB x 1"));
  CHECK_FALSE(wire::valid_subject("a\tb"));
  CHECK(wire::valid_header_key("Nats-Msg-Id"));
  CHECK_FALSE(wire::valid_header_key("A:B"));
  CHECK_FALSE(wire::valid_header_key("A B"));
  CHECK_FALSE(wire::valid_header_key(""));
  CHECK(wire::valid_header_value("any: thing, even spaces"));
  CHECK(wire::valid_header_value(""));
  CHECK_FALSE(wire::valid_header_value("a\r\nInjected: 1"));
}

TEST_CASE("subjects match subscription patterns", "[nats][wire]") {
  CHECK(wire::subject_matches("orders.eu", "orders.eu"));
  CHECK_FALSE(wire::subject_matches("orders.eu", "orders.eu.x"));
  CHECK_FALSE(wire::subject_matches("orders.eu.x", "orders.eu"));
  CHECK(wire::subject_matches("orders.*", "orders.eu"));
  CHECK_FALSE(wire::subject_matches("orders.*", "orders.eu.x"));
  CHECK_FALSE(wire::subject_matches("orders.*", "orders"));
  CHECK(wire::subject_matches("orders.>", "orders.eu.x"));
  CHECK(wire::subject_matches("orders.>", "orders.eu"));
  CHECK_FALSE(wire::subject_matches("orders.>", "orders"));
  CHECK(wire::subject_matches(">", "$JS.API.STREAM.DELETE.X"));
  CHECK(wire::subject_matches("*.eu.>", "orders.eu.1.2"));
  CHECK_FALSE(wire::subject_matches("orders.>", "$JS.API.STREAM.DELETE.X"));
  CHECK_FALSE(wire::subject_matches("COVENANT.countries", "COVENANT.countries."));
  CHECK_FALSE(wire::subject_matches("a.*", "a."));
}
