// Unit tests for daemon/link/frame.{h,cpp}: every frame type's encoding, the
// decoders' refusals, and FrameReader over every way a byte stream can be split.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "link/frame.h"
#include "link/wire.h"

using namespace isthmus;
using namespace isthmus::link;

namespace {

constexpr int64_t kNow = 1'718'000'000'123'456'789;  // a 2024 Unix ns time

struct Decoded {
  FrameType type;
  std::vector<uint8_t> body;
};

// Splits one encoded frame (exactly one) into type and body, checking the header.
Decoded split_one(const std::vector<uint8_t>& f) {
  REQUIRE(f.size() >= kFrameHeaderBytes);
  uint32_t len = (uint32_t{f[0]} << 24) | (uint32_t{f[1]} << 16) | (uint32_t{f[2]} << 8) | f[3];
  REQUIRE(len == f.size() - 4);
  return Decoded{static_cast<FrameType>(f[4]), std::vector<uint8_t>(f.begin() + 5, f.end())};
}

template <typename T>
T round_trip(const T& in, FrameType expect) {
  std::vector<uint8_t> out;
  encode(in, out);
  auto d = split_one(out);
  CHECK(d.type == expect);
  T back;
  Status st = decode(d.body, back);
  INFO(st.to_string());
  REQUIRE(st.is_ok());
  return back;
}

std::string binary_payload(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

Message make_msg(uint64_t seq, size_t payload_bytes) {
  Message m;
  m.seq = seq;
  m.time_ns = kNow + static_cast<int64_t>(seq) * 1000;
  m.subject = "covenant.countries." + std::to_string(seq % 7);
  m.headers = {{"Nats-Msg-Id", "id-" + std::to_string(seq)},
               {"X-Trace", "a"},
               {"X-Trace", "b"},
               {"Content-Type", "application/json"}};
  m.payload = binary_payload(payload_bytes, static_cast<uint32_t>(seq));
  return m;
}

void check_msg_eq(const Message& a, const Message& b) {
  CHECK(a.seq == b.seq);
  CHECK(a.time_ns == b.time_ns);
  CHECK(a.subject == b.subject);
  CHECK(a.headers == b.headers);
  CHECK(a.payload == b.payload);
}

void check_data_eq(const Data& a, const Data& b) {
  CHECK(a.stream == b.stream);
  CHECK(a.epoch == b.epoch);
  CHECK(a.sub_id == b.sub_id);
  CHECK(a.leader_last_seq == b.leader_last_seq);
  REQUIRE(a.msgs.size() == b.msgs.size());
  for (size_t i = 0; i < a.msgs.size(); ++i) check_msg_eq(a.msgs[i], b.msgs[i]);
}

Data sample_data(size_t n) {
  Data d;
  d.stream = "COVENANT_COUNTRIES";
  d.epoch = 7;
  d.sub_id = 3;
  d.leader_last_seq = 1'000'000 + n;
  for (size_t i = 0; i < n; ++i) d.msgs.push_back(make_msg(1'000'001 + i, (i * 37) % 300));
  return d;
}

}  // namespace

// ---------------------------------------------------------------------------
// Round trips

TEST_CASE("frame type names", "[frame]") {
  CHECK(std::string(frame_type_name(FrameType::kHello)) == "hello");
  CHECK(std::string(frame_type_name(FrameType::kData)) == "data");
  CHECK(std::string(frame_type_name(FrameType::kGoAway)) == "goaway");
  CHECK(std::string(frame_type_name(static_cast<FrameType>(99))) == "unknown");
}

TEST_CASE("frame header: big-endian length of type+body, then type", "[frame]") {
  std::vector<uint8_t> out = {0xee};  // encoders append
  encode(StreamReq{"S"}, out);
  CHECK(out == std::vector<uint8_t>{0xee, 0, 0, 0, 3, 2, 1, 'S'});
  // A body above 64 KiB exercises all length bytes.
  StreamInfo si;
  si.config_json = std::string(70000, 'c');
  std::vector<uint8_t> big;
  encode(si, big);
  uint32_t len = (uint32_t{big[0]} << 24) | (uint32_t{big[1]} << 16) | (uint32_t{big[2]} << 8) | big[3];
  CHECK(len == big.size() - 4);
  CHECK(big[1] == 0x01);
}

TEST_CASE("HELLO round trip", "[frame]") {
  Hello h;
  h.region = "ams";
  h.epoch = 42;
  h.flags = 0xdeadbeef;
  auto b = round_trip(h, FrameType::kHello);
  CHECK(b.version == kProtocolVersion);
  CHECK(b.region == "ams");
  CHECK(b.epoch == 42);
  CHECK(b.flags == 0xdeadbeef);

  Hello h2;
  h2.version = 0xffff;
  h2.region = std::string(kMaxNameBytes, 'r');
  h2.epoch = std::numeric_limits<uint64_t>::max();
  auto b2 = round_trip(h2, FrameType::kHello);
  CHECK(b2.version == 0xffff);
  CHECK(b2.region == h2.region);
  CHECK(b2.epoch == h2.epoch);
}

TEST_CASE("HELLO starts with the ISTH magic", "[frame]") {
  std::vector<uint8_t> out;
  encode(Hello{.region = "iad"}, out);
  auto d = split_one(out);
  WireReader r(d.body);
  uint64_t magic = 0, version = 0;
  REQUIRE(r.uvarint(magic));
  REQUIRE(r.uvarint(version));
  CHECK(magic == 0x49535448);
  CHECK(version == 1);
}

TEST_CASE("HELLO with a bad magic or out-of-range field is refused", "[frame]") {
  auto body = [](uint64_t magic, uint64_t version, std::string region, uint64_t flags) {
    std::vector<uint8_t> b;
    WireWriter w(b);
    w.uvarint(magic);
    w.uvarint(version);
    w.bytes(region);
    w.uvarint(5);
    w.uvarint(flags);
    return b;
  };
  Hello h;
  CHECK(decode(body(kHelloMagic, 1, "iad", 0), h).is_ok());
  CHECK(h.region == "iad");
  CHECK(h.epoch == 5);

  Status st = decode(body(0x48545349, 1, "iad", 0), h);  // byte-swapped
  CHECK(st.code() == Code::kInvalid);
  CHECK(st.message().find("magic") != std::string::npos);
  CHECK(decode(body(0, 1, "iad", 0), h).code() == Code::kInvalid);
  CHECK(decode(body(kHelloMagic + 1, 1, "iad", 0), h).code() == Code::kInvalid);
  CHECK(decode(body(kHelloMagic, 0x10000, "iad", 0), h).code() == Code::kInvalid);
  CHECK(decode(body(kHelloMagic, 1, "iad", 0x100000000ull), h).code() == Code::kInvalid);
  // A region name over 256 bytes.
  CHECK(decode(body(kHelloMagic, 1, std::string(kMaxNameBytes + 1, 'x'), 0), h).code() == Code::kTooLarge);
  // An HTTP request sent to the link port is not a HELLO.
  std::string http = "GET / HTTP/1.1\r\n\r\n";
  CHECK_FALSE(decode(std::vector<uint8_t>(http.begin(), http.end()), h).is_ok());
}

TEST_CASE("HELLO from a newer protocol version decodes (the link decides)", "[frame]") {
  Hello h;
  h.version = 2;
  h.region = "syd";
  auto b = round_trip(h, FrameType::kHello);
  CHECK(b.version == 2);
}

TEST_CASE("STREAM_REQ round trip", "[frame]") {
  auto b = round_trip(StreamReq{"ALERTS_INCIDENTS"}, FrameType::kStreamReq);
  CHECK(b.stream == "ALERTS_INCIDENTS");
  CHECK(round_trip(StreamReq{""}, FrameType::kStreamReq).stream.empty());
  std::vector<uint8_t> out;
  encode(StreamReq{std::string(kMaxNameBytes + 1, 's')}, out);
  StreamReq r;
  CHECK(decode(split_one(out).body, r).code() == Code::kTooLarge);
}

TEST_CASE("STREAM_INFO round trip", "[frame]") {
  StreamInfo si;
  si.stream = "COVENANT_USERS";
  si.first_seq = 17;
  si.last_seq = 123456789;
  si.config_json =
      R"({"name":"COVENANT_USERS","subjects":["covenant.users.>"],"retention":"limits","storage":"file",)"
      R"("max_msgs":-1,"max_bytes":-1,"max_age":0,"num_replicas":3,"duplicate_window":120000000000})";
  auto b = round_trip(si, FrameType::kStreamInfo);
  CHECK(b.stream == si.stream);
  CHECK(b.error.empty());
  CHECK(b.first_seq == 17);
  CHECK(b.last_seq == 123456789);
  CHECK(b.config_json == si.config_json);

  StreamInfo err;
  err.stream = "NOPE";
  err.error = "stream not found";
  auto e = round_trip(err, FrameType::kStreamInfo);
  CHECK(e.error == "stream not found");
  CHECK(e.config_json.empty());
  CHECK(e.first_seq == 0);

  StreamInfo longerr;
  longerr.error = std::string(4097, 'e');
  std::vector<uint8_t> out;
  encode(longerr, out);
  StreamInfo x;
  CHECK(decode(split_one(out).body, x).code() == Code::kTooLarge);
}

TEST_CASE("SUBSCRIBE round trip", "[frame]") {
  Subscribe s{.stream = "COVENANT_PROJECTS", .from_seq = 1, .epoch = 3, .sub_id = 99};
  auto b = round_trip(s, FrameType::kSubscribe);
  CHECK(b.stream == s.stream);
  CHECK(b.from_seq == 1);
  CHECK(b.epoch == 3);
  CHECK(b.sub_id == 99);
  Subscribe m{.stream = "S", .from_seq = std::numeric_limits<uint64_t>::max(),
              .epoch = std::numeric_limits<uint64_t>::max(), .sub_id = std::numeric_limits<uint64_t>::max()};
  auto bm = round_trip(m, FrameType::kSubscribe);
  CHECK(bm.from_seq == m.from_seq);
  CHECK(bm.sub_id == m.sub_id);
}

TEST_CASE("DATA round trip with many messages", "[frame]") {
  Data d = sample_data(500);
  auto b = round_trip(d, FrameType::kData);
  check_data_eq(d, b);
}

TEST_CASE("DATA round trip: empty batch, empty payloads, no headers, binary everywhere", "[frame]") {
  SECTION("no messages (a keepalive batch)") {
    Data d;
    d.stream = "S";
    d.epoch = 1;
    d.sub_id = 2;
    d.leader_last_seq = 10;
    auto b = round_trip(d, FrameType::kData);
    check_data_eq(d, b);
  }
  SECTION("empty payloads, empty subject, no headers") {
    Data d;
    d.stream = "S";
    for (uint64_t i = 1; i <= 3; ++i) {
      Message m;
      m.seq = i;
      m.time_ns = 0;
      d.msgs.push_back(m);
    }
    d.msgs[1].subject = "a.b";
    auto b = round_trip(d, FrameType::kData);
    check_data_eq(d, b);
  }
  SECTION("repeated header keys keep their order; empty values; binary header values") {
    Data d;
    d.stream = "ALERTS_INCIDENTS";
    Message m;
    m.seq = 5;
    m.time_ns = -1;  // before the epoch: svarint must carry negatives
    m.subject = "alerts.incidents.sev1";
    m.headers = {{"X-Tag", "one"}, {"Nats-Expected-Last-Sequence", "4"}, {"X-Tag", "two"},
                 {"X-Empty", ""},  {"x-tag", "three"},                   {"X-Bin", std::string("\0\xff\r\n", 4)}};
    m.payload = binary_payload(70000, 5);
    m.payload[0] = '\0';
    d.msgs.push_back(m);
    auto b = round_trip(d, FrameType::kData);
    check_data_eq(d, b);
  }
  SECTION("extreme sequence and time values") {
    Data d;
    d.stream = "S";
    d.epoch = std::numeric_limits<uint64_t>::max();
    d.sub_id = std::numeric_limits<uint64_t>::max();
    d.leader_last_seq = std::numeric_limits<uint64_t>::max();
    Message a;
    a.seq = std::numeric_limits<uint64_t>::max();
    a.time_ns = std::numeric_limits<int64_t>::min();
    Message b;
    b.seq = 0;
    b.time_ns = std::numeric_limits<int64_t>::max();
    d.msgs = {a, b};
    auto r = round_trip(d, FrameType::kData);
    check_data_eq(d, r);
  }
  SECTION("exactly kMaxHeaders headers and a 4096-byte subject") {
    Data d;
    d.stream = "S";
    Message m;
    m.seq = 1;
    m.subject = std::string(kMaxSubjectBytes, 's');
    for (size_t i = 0; i < kMaxHeaders; ++i) m.headers.emplace_back("H" + std::to_string(i), "v");
    d.msgs.push_back(m);
    auto r = round_trip(d, FrameType::kData);
    check_data_eq(d, r);
  }
}

TEST_CASE("DATA decode replaces messages already in the target", "[frame]") {
  Data d = sample_data(2);
  std::vector<uint8_t> out;
  encode(d, out);
  Data target = sample_data(5);
  REQUIRE(decode(split_one(out).body, target).is_ok());
  check_data_eq(d, target);
}

TEST_CASE("ACK, STATE, STOP, HEARTBEAT, GOAWAY round trips", "[frame]") {
  Ack a{.stream = "COVENANT_COUNTRIES", .stored_seq = 987654, .stored_time_ns = kNow};
  auto ab = round_trip(a, FrameType::kAck);
  CHECK(ab.stream == a.stream);
  CHECK(ab.stored_seq == 987654);
  CHECK(ab.stored_time_ns == kNow);
  Ack a0{.stream = "S", .stored_seq = 0, .stored_time_ns = 0};
  CHECK(round_trip(a0, FrameType::kAck).stored_time_ns == 0);

  State s{.stream = "COVENANT_USERS", .first_seq = 100, .last_seq = 200, .last_time_ns = kNow};
  auto sb = round_trip(s, FrameType::kState);
  CHECK(sb.stream == s.stream);
  CHECK(sb.first_seq == 100);
  CHECK(sb.last_seq == 200);
  CHECK(sb.last_time_ns == kNow);
  State empty{.stream = "E"};
  auto eb = round_trip(empty, FrameType::kState);
  CHECK(eb.first_seq == 0);
  CHECK(eb.last_time_ns == 0);

  Stop st{.stream = "COVENANT_PROJECTS", .reason = "diverged: ack for seq 12 named seq 13"};
  auto stb = round_trip(st, FrameType::kStop);
  CHECK(stb.stream == st.stream);
  CHECK(stb.reason == st.reason);

  Heartbeat hb{.send_ns = kNow, .echo_send_ns = kNow - 5'000'000, .echo_recv_ns = kNow - 4'000'000};
  auto hbb = round_trip(hb, FrameType::kHeartbeat);
  CHECK(hbb.send_ns == hb.send_ns);
  CHECK(hbb.echo_send_ns == hb.echo_send_ns);
  CHECK(hbb.echo_recv_ns == hb.echo_recv_ns);
  Heartbeat first{.send_ns = kNow};  // nothing to echo yet
  auto fb = round_trip(first, FrameType::kHeartbeat);
  CHECK(fb.echo_send_ns == 0);
  Heartbeat neg{.send_ns = -1, .echo_send_ns = std::numeric_limits<int64_t>::min(),
                .echo_recv_ns = std::numeric_limits<int64_t>::max()};
  auto nb = round_trip(neg, FrameType::kHeartbeat);
  CHECK(nb.send_ns == -1);
  CHECK(nb.echo_send_ns == neg.echo_send_ns);
  CHECK(nb.echo_recv_ns == neg.echo_recv_ns);

  auto gb = round_trip(GoAway{"shutdown"}, FrameType::kGoAway);
  CHECK(gb.reason == "shutdown");
  CHECK(round_trip(GoAway{""}, FrameType::kGoAway).reason.empty());
}

TEST_CASE("DELETED round-trips its sequences as deltas", "[frame]") {
  auto d = round_trip(Deleted{.stream = "ALERTS_INCIDENTS", .first_seq = 10001, .seqs = {10005, 10006, 10007, 20000}},
                      FrameType::kDeleted);
  CHECK(d.stream == "ALERTS_INCIDENTS");
  CHECK(d.first_seq == 10001);
  CHECK(d.seqs == std::vector<uint64_t>{10005, 10006, 10007, 20000});
  CHECK(round_trip(Deleted{.stream = "S", .first_seq = 0, .seqs = {}}, FrameType::kDeleted).seqs.empty());
  uint64_t big = std::numeric_limits<uint64_t>::max();
  CHECK(round_trip(Deleted{.stream = "S", .first_seq = big, .seqs = {1, big}}, FrameType::kDeleted).seqs ==
        std::vector<uint64_t>{1, big});
  CHECK(std::string(frame_type_name(FrameType::kDeleted)) == "deleted");

  // Consecutive sequences cost one byte each.
  Deleted run{.stream = "S", .first_seq = 1};
  for (uint64_t s = 1'000'000; s < 1'000'000 + kMaxDeletedPerFrame; ++s) run.seqs.push_back(s);
  std::vector<uint8_t> out;
  encode(run, out);
  CHECK(out.size() < kMaxDeletedPerFrame + 32);
  Deleted back;
  REQUIRE(decode(split_one(out).body, back).is_ok());
  CHECK(back.seqs == run.seqs);
}

TEST_CASE("DELETED refuses unordered, oversized and overflowing lists", "[frame]") {
  auto body_of = [](const std::vector<uint64_t>& deltas, uint64_t count) {
    std::vector<uint8_t> b;
    WireWriter w(b);
    w.bytes("S");
    w.uvarint(1);
    w.uvarint(count);
    for (uint64_t d : deltas) w.uvarint(d);
    return b;
  };
  Deleted d;
  CHECK(decode(body_of({5, 0}, 2), d).message().find("ascending") != std::string::npos);  // repeated
  CHECK(decode(body_of({0}, 1), d).code() == Code::kInvalid);                             // sequence 0
  CHECK(decode(body_of({std::numeric_limits<uint64_t>::max(), 1}, 2), d).code() == Code::kInvalid);
  CHECK(decode(body_of({1}, kMaxDeletedPerFrame + 1), d).code() == Code::kTooLarge);
  CHECK(decode(body_of({1, 1}, 1000), d).code() == Code::kInvalid);  // count beyond the body
  CHECK(decode(body_of({1, 1}, 2), d).is_ok());
}

TEST_CASE("reason and error strings are limited to 4096 bytes", "[frame]") {
  std::vector<uint8_t> out;
  encode(GoAway{std::string(4096, 'g')}, out);
  GoAway g;
  CHECK(decode(split_one(out).body, g).is_ok());
  out.clear();
  encode(GoAway{std::string(4097, 'g')}, out);
  CHECK(decode(split_one(out).body, g).code() == Code::kTooLarge);
  out.clear();
  encode(Stop{.stream = "S", .reason = std::string(4097, 'r')}, out);
  Stop s;
  CHECK(decode(split_one(out).body, s).code() == Code::kTooLarge);
}

// ---------------------------------------------------------------------------
// Decoder refusals

namespace {

template <typename T>
void check_every_truncation_refused(const T& frame_value) {
  std::vector<uint8_t> out;
  encode(frame_value, out);
  auto body = split_one(out).body;
  for (size_t n = 0; n < body.size(); ++n) {
    T x;
    Status st = decode(std::span<const uint8_t>(body.data(), n), x);
    INFO("prefix " << n << " of " << body.size());
    CHECK_FALSE(st.is_ok());
  }
  // Trailing bytes after a complete body are refused.
  for (uint8_t extra : {uint8_t{0}, uint8_t{1}, uint8_t{0xff}}) {
    auto longer = body;
    longer.push_back(extra);
    T x;
    Status st = decode(longer, x);
    CHECK(st.code() == Code::kInvalid);
    CHECK(st.message().find("trailing") != std::string::npos);
  }
}

}  // namespace

TEST_CASE("every decoder refuses truncated bodies and trailing bytes", "[frame]") {
  check_every_truncation_refused(Hello{.region = "iad", .epoch = 300, .flags = 1});
  check_every_truncation_refused(StreamReq{"COVENANT_USERS"});
  check_every_truncation_refused(
      StreamInfo{.stream = "S", .error = "", .first_seq = 1, .last_seq = 2, .config_json = "{}"});
  check_every_truncation_refused(Subscribe{.stream = "S", .from_seq = 1000, .epoch = 1, .sub_id = 2});
  check_every_truncation_refused(sample_data(3));
  check_every_truncation_refused(Ack{.stream = "S", .stored_seq = 300, .stored_time_ns = kNow});
  check_every_truncation_refused(State{.stream = "S", .first_seq = 1, .last_seq = 2, .last_time_ns = kNow});
  check_every_truncation_refused(Stop{.stream = "S", .reason = "r"});
  check_every_truncation_refused(Heartbeat{.send_ns = kNow, .echo_send_ns = 1, .echo_recv_ns = 2});
  check_every_truncation_refused(GoAway{"shutdown"});
  check_every_truncation_refused(Deleted{.stream = "S", .first_seq = 3, .seqs = {5, 6, 300}});
}

TEST_CASE("truncation errors carry the frame name and Truncated code", "[frame]") {
  std::vector<uint8_t> out;
  encode(Ack{.stream = "COVENANT_USERS", .stored_seq = 1, .stored_time_ns = 1}, out);
  auto body = split_one(out).body;
  body.resize(5);
  Ack a;
  Status st = decode(body, a);
  CHECK(st.code() == Code::kTruncated);
  CHECK(st.message().rfind("ack:", 0) == 0);
}

TEST_CASE("DATA whose message count exceeds what the body can hold is refused without reserving", "[frame]") {
  auto data_body = [](uint64_t count, size_t filler) {
    std::vector<uint8_t> b;
    WireWriter w(b);
    w.bytes("S");
    w.uvarint(1);
    w.uvarint(1);
    w.uvarint(1);
    w.uvarint(count);
    b.insert(b.end(), filler, 0);
    return b;
  };
  SECTION("an absurd count in a tiny body") {
    for (uint64_t count : {uint64_t{1} << 60, std::numeric_limits<uint64_t>::max(), uint64_t{1} << 32}) {
      Data d;
      Status st = decode(data_body(count, 10), d);
      CHECK(st.code() == Code::kInvalid);
      CHECK(st.message().find("count") != std::string::npos);
      CHECK(d.msgs.capacity() < 1000);  // nothing large was reserved
    }
  }
  SECTION("the smallest message is 5 bytes: n zeros hold exactly n/5 messages") {
    // Five zero bytes are a valid message: seq 0, time 0, empty subject, no headers, empty payload.
    Data d;
    REQUIRE(decode(data_body(4, 20), d).is_ok());
    CHECK(d.msgs.size() == 4);
    CHECK(decode(data_body(5, 20), d).code() != Code::kOk);
    CHECK(decode(data_body(1, 0), d).code() != Code::kOk);
    CHECK(decode(data_body(1000, 20), d).code() == Code::kInvalid);
    CHECK(decode(data_body(0, 0), d).is_ok());
    CHECK(d.msgs.empty());
  }
}

TEST_CASE("DATA with more than kMaxHeaders headers is refused", "[frame]") {
  Data d;
  d.stream = "S";
  Message m;
  m.seq = 1;
  for (size_t i = 0; i < kMaxHeaders + 1; ++i) m.headers.emplace_back("H", "v");
  d.msgs.push_back(m);
  std::vector<uint8_t> out;
  encode(d, out);
  Data back;
  Status st = decode(split_one(out).body, back);
  CHECK(st.code() == Code::kTooLarge);
  CHECK(st.message().find("headers") != std::string::npos);

  SECTION("a huge declared header count is refused before reserving") {
    std::vector<uint8_t> b;
    WireWriter w(b);
    w.bytes("S");
    w.uvarint(0);
    w.uvarint(0);
    w.uvarint(0);
    w.uvarint(1);
    w.uvarint(1);  // seq
    w.svarint(0);  // time
    w.bytes("subj");
    w.uvarint(std::numeric_limits<uint64_t>::max());  // nheaders
    w.bytes("");                                      // padding so the count check passes
    Data x;
    CHECK(decode(b, x).code() == Code::kTooLarge);
  }
}

TEST_CASE("DATA with a subject over 4096 bytes is refused", "[frame]") {
  Data d;
  d.stream = "S";
  Message m;
  m.subject = std::string(kMaxSubjectBytes + 1, 's');
  d.msgs.push_back(m);
  std::vector<uint8_t> out;
  encode(d, out);
  Data back;
  CHECK(decode(split_one(out).body, back).code() == Code::kTooLarge);
}

TEST_CASE("DATA with trailing bytes after the last message is refused", "[frame]") {
  Data d = sample_data(2);
  std::vector<uint8_t> out;
  encode(d, out);
  auto body = split_one(out).body;
  // Claim one message fewer than present: the last one becomes trailing bytes.
  Data one = d;
  one.msgs.pop_back();
  std::vector<uint8_t> out1;
  encode(one, out1);
  auto body1 = split_one(out1).body;
  body1.insert(body1.end(), body.end() - static_cast<std::ptrdiff_t>(body.size() - body1.size()), body.end());
  REQUIRE(body1.size() == body.size());
  Data back;
  Status st = decode(body1, back);
  CHECK(st.code() == Code::kInvalid);
  CHECK(st.message().find("trailing") != std::string::npos);
}

// ---------------------------------------------------------------------------
// FrameReader

namespace {

struct Seen {
  FrameType type;
  std::vector<uint8_t> body;
};

FrameReader::OnFrame collect(std::vector<Seen>& seen) {
  return [&seen](FrameType t, std::span<const uint8_t> body) {
    seen.push_back(Seen{t, std::vector<uint8_t>(body.begin(), body.end())});
    return Status::ok();
  };
}

// A realistic conversation: every frame type, one DATA with many messages.
std::vector<uint8_t> conversation(std::vector<Seen>& expect) {
  std::vector<uint8_t> all;
  auto add = [&](const auto& f) {
    std::vector<uint8_t> one;
    encode(f, one);
    auto d = split_one(one);
    expect.push_back(Seen{d.type, d.body});
    all.insert(all.end(), one.begin(), one.end());
  };
  add(Hello{.region = "ams", .epoch = 1});
  add(StreamReq{"COVENANT_COUNTRIES"});
  add(StreamInfo{.stream = "COVENANT_COUNTRIES", .first_seq = 1, .last_seq = 80, .config_json = "{\"name\":\"X\"}"});
  add(Subscribe{.stream = "COVENANT_COUNTRIES", .from_seq = 1, .epoch = 1, .sub_id = 1});
  add(sample_data(40));
  add(Ack{.stream = "COVENANT_COUNTRIES", .stored_seq = 40, .stored_time_ns = kNow});
  add(State{.stream = "COVENANT_COUNTRIES", .first_seq = 1, .last_seq = 80, .last_time_ns = kNow});
  add(Heartbeat{.send_ns = kNow, .echo_send_ns = kNow - 1, .echo_recv_ns = kNow - 2});
  add(Stop{.stream = "COVENANT_COUNTRIES", .reason = "diverged"});
  add(Deleted{.stream = "COVENANT_COUNTRIES", .first_seq = 1, .seqs = {7, 8, 9, 70}});
  add(GoAway{"shutdown"});
  return all;
}

void check_seen(const std::vector<Seen>& got, const std::vector<Seen>& expect) {
  REQUIRE(got.size() == expect.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].type == expect[i].type);
    CHECK(got[i].body == expect[i].body);
  }
}

}  // namespace

TEST_CASE("FrameReader: many frames in one feed", "[frame][reader]") {
  std::vector<Seen> expect, got;
  auto all = conversation(expect);
  FrameReader r(8 * 1024 * 1024);
  REQUIRE(r.feed(all, collect(got)).is_ok());
  check_seen(got, expect);
  CHECK(r.buffered() == 0);
  // The bodies decode as the frames they are.
  Data d;
  REQUIRE(got[4].type == FrameType::kData);
  REQUIRE(decode(got[4].body, d).is_ok());
  check_data_eq(d, sample_data(40));
}

TEST_CASE("FrameReader: one byte at a time", "[frame][reader]") {
  std::vector<Seen> expect, got;
  auto all = conversation(expect);
  FrameReader r(1 << 20);
  for (size_t i = 0; i < all.size(); ++i) {
    REQUIRE(r.feed(std::span<const uint8_t>(&all[i], 1), collect(got)).is_ok());
  }
  check_seen(got, expect);
  CHECK(r.buffered() == 0);
}

TEST_CASE("FrameReader: every two-way split of the stream", "[frame][reader]") {
  std::vector<Seen> expect;
  auto all = conversation(expect);
  for (size_t cut = 0; cut <= all.size(); ++cut) {
    std::vector<Seen> got;
    FrameReader r(1 << 20);
    REQUIRE(r.feed(std::span<const uint8_t>(all.data(), cut), collect(got)).is_ok());
    REQUIRE(r.feed(std::span<const uint8_t>(all.data() + cut, all.size() - cut), collect(got)).is_ok());
    INFO("cut at " << cut);
    check_seen(got, expect);
    CHECK(r.buffered() == 0);
  }
}

TEST_CASE("FrameReader: random splits, including empty feeds", "[frame][reader]") {
  std::vector<Seen> expect;
  auto all = conversation(expect);
  std::mt19937 rng(20240611);
  for (int round = 0; round < 300; ++round) {
    std::vector<Seen> got;
    FrameReader r(1 << 20);
    size_t pos = 0;
    const size_t max_piece = round % 3 == 0 ? 8 : (round % 3 == 1 ? 100 : 5000);
    while (pos < all.size()) {
      size_t n = std::min<size_t>(rng() % (max_piece + 1), all.size() - pos);
      REQUIRE(r.feed(std::span<const uint8_t>(all.data() + pos, n), collect(got)).is_ok());
      pos += n;
      CHECK(r.buffered() <= all.size());
    }
    INFO("round " << round);
    check_seen(got, expect);
    CHECK(r.buffered() == 0);
  }
}

TEST_CASE("FrameReader: an incomplete frame is buffered without a callback", "[frame][reader]") {
  std::vector<uint8_t> f;
  encode(Ack{.stream = "S", .stored_seq = 5, .stored_time_ns = kNow}, f);
  for (size_t n = 1; n < f.size(); ++n) {
    FrameReader r(1 << 20);
    int calls = 0;
    auto cb = [&](FrameType, std::span<const uint8_t>) {
      ++calls;
      return Status::ok();
    };
    REQUIRE(r.feed(std::span<const uint8_t>(f.data(), n), cb).is_ok());
    CHECK(calls == 0);
    CHECK(r.buffered() == n);
    REQUIRE(r.feed(std::span<const uint8_t>(f.data() + n, f.size() - n), cb).is_ok());
    CHECK(calls == 1);
    CHECK(r.buffered() == 0);
  }
}

TEST_CASE("FrameReader: complete frames are delivered and the partial tail kept", "[frame][reader]") {
  std::vector<uint8_t> a, b;
  encode(StreamReq{"A"}, a);
  encode(StreamReq{"B"}, b);
  std::vector<uint8_t> in = a;
  in.insert(in.end(), b.begin(), b.begin() + 3);
  std::vector<Seen> got;
  FrameReader r(1 << 20);
  REQUIRE(r.feed(in, collect(got)).is_ok());
  REQUIRE(got.size() == 1);
  CHECK(r.buffered() == 3);
  REQUIRE(r.feed(std::span<const uint8_t>(b.data() + 3, b.size() - 3), collect(got)).is_ok());
  REQUIRE(got.size() == 2);
  StreamReq sr;
  REQUIRE(decode(got[1].body, sr).is_ok());
  CHECK(sr.stream == "B");
}

TEST_CASE("FrameReader: a length above the limit is refused before buffering", "[frame][reader]") {
  const uint32_t limit = 4096;
  int calls = 0;
  auto cb = [&](FrameType, std::span<const uint8_t>) {
    ++calls;
    return Status::ok();
  };
  SECTION("header alone") {
    FrameReader r(limit);
    std::vector<uint8_t> h = {0x00, 0x00, 0x10, 0x01, 5};  // 4097
    Status st = r.feed(h, cb);
    CHECK(st.code() == Code::kTooLarge);
    CHECK(r.buffered() <= kFrameHeaderBytes);
    CHECK(calls == 0);
  }
  SECTION("header followed by lots of body in the same feed") {
    FrameReader r(limit);
    std::vector<uint8_t> h = {0x7f, 0xff, 0xff, 0xff, 5};
    h.resize(1 << 20, 0xab);
    Status st = r.feed(h, cb);
    CHECK(st.code() == Code::kTooLarge);
    CHECK(r.buffered() <= kFrameHeaderBytes);
    CHECK(calls == 0);
  }
  SECTION("header split across feeds, then a large chunk of body") {
    FrameReader r(limit);
    std::vector<uint8_t> h1 = {0xff, 0xff};
    REQUIRE(r.feed(h1, cb).is_ok());
    CHECK(r.buffered() == 2);
    std::vector<uint8_t> h2 = {0xff, 0xff, 5};
    h2.resize(1 << 20, 0xcd);
    Status st = r.feed(h2, cb);
    CHECK(st.code() == Code::kTooLarge);
    CHECK(r.buffered() <= kFrameHeaderBytes);
    CHECK(calls == 0);
  }
  SECTION("after a good frame in the same feed") {
    FrameReader r(limit);
    std::vector<uint8_t> in;
    encode(GoAway{"x"}, in);
    std::vector<uint8_t> bad = {0x01, 0x00, 0x00, 0x00, 5};
    in.insert(in.end(), bad.begin(), bad.end());
    Status st = r.feed(in, cb);
    CHECK(st.code() == Code::kTooLarge);
    CHECK(calls == 1);
    CHECK(r.buffered() <= kFrameHeaderBytes);
  }
  SECTION("the limit itself is accepted") {
    FrameReader r(limit);
    StreamInfo si;
    si.stream = "S";
    std::vector<uint8_t> f;
    encode(si, f);
    // Grow config_json until type+body is exactly the limit.
    si.config_json = std::string(limit - (f.size() - 4) - 1, 'j');
    f.clear();
    encode(si, f);
    REQUIRE(f.size() - 4 == limit);
    REQUIRE(r.feed(f, cb).is_ok());
    CHECK(calls == 1);
    si.config_json.push_back('j');
    f.clear();
    encode(si, f);
    REQUIRE(f.size() - 4 == limit + 1);
    FrameReader r2(limit);
    CHECK(r2.feed(f, cb).code() == Code::kTooLarge);
    CHECK(calls == 1);
  }
}

TEST_CASE("FrameReader: zero length is refused", "[frame][reader]") {
  int calls = 0;
  auto cb = [&](FrameType, std::span<const uint8_t>) {
    ++calls;
    return Status::ok();
  };
  FrameReader r(1 << 20);
  std::vector<uint8_t> z = {0, 0, 0, 0};
  Status st = r.feed(z, cb);
  CHECK(st.code() == Code::kInvalid);
  CHECK(calls == 0);
  FrameReader r2(1 << 20);
  REQUIRE(r2.feed(std::span<const uint8_t>(z.data(), 3), cb).is_ok());
  CHECK(r2.feed(std::span<const uint8_t>(z.data() + 3, 1), cb).code() == Code::kInvalid);
}

TEST_CASE("FrameReader: a type-only frame has an empty body; unknown types reach the callback", "[frame][reader]") {
  std::vector<uint8_t> f = {0, 0, 0, 1, 77};
  std::vector<Seen> got;
  FrameReader r(1 << 20);
  REQUIRE(r.feed(f, collect(got)).is_ok());
  REQUIRE(got.size() == 1);
  CHECK(static_cast<int>(got[0].type) == 77);
  CHECK(got[0].body.empty());
  // An empty body does not decode as any frame that has fields.
  GoAway g;
  CHECK(decode(got[0].body, g).code() == Code::kTruncated);
}

TEST_CASE("FrameReader: a callback error stops the feed and is returned", "[frame][reader]") {
  std::vector<Seen> expect;
  auto all = conversation(expect);
  FrameReader r(1 << 20);
  int calls = 0;
  Status st = r.feed(all, [&](FrameType t, std::span<const uint8_t>) {
    ++calls;
    if (t == FrameType::kSubscribe) return Status(Code::kConflict, "stop here");
    return Status::ok();
  });
  CHECK(st.code() == Code::kConflict);
  CHECK(st.message() == "stop here");
  CHECK(calls == 4);
}

TEST_CASE("FrameReader: a large frame fed in small pieces stays linear", "[frame][reader]") {
  // A 4 MiB DATA frame arriving in 1448-byte TCP segments. Buffering must not
  // re-copy everything received so far on every feed (quadratic: ~12 GB copied).
  Data d;
  d.stream = "COVENANT_PROJECTS";
  for (uint64_t i = 0; i < 64; ++i) d.msgs.push_back(make_msg(i + 1, 64 * 1024));
  std::vector<uint8_t> f;
  encode(d, f);
  REQUIRE(f.size() > 4 * 1024 * 1024);
  std::vector<Seen> got;
  FrameReader r(8 * 1024 * 1024);
  auto start = std::chrono::steady_clock::now();
  for (size_t pos = 0; pos < f.size(); pos += 1448) {
    REQUIRE(r.feed(std::span<const uint8_t>(f.data() + pos, std::min<size_t>(1448, f.size() - pos)), collect(got))
                .is_ok());
  }
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(got.size() == 1);
  Data back;
  REQUIRE(decode(got[0].body, back).is_ok());
  check_data_eq(d, back);
  CHECK(secs < 1.0);
}

TEST_CASE("LAG_REPORT round trip, unknowns as -1, and refusals", "[frame]") {
  LagReport r{.stream = "COVENANT_COUNTRIES",
              .applied_seq = 123456,
              .flags = kLagFlagOffsetKnown | kLagFlagSyncStarted | kLagFlagSyncing,
              .time_lag_ns = 20'500'000,
              .p50_ns = 20'000'000,
              .p95_ns = 25'000'000,
              .p99_ns = 31'000'000,
              .window_samples = 3000,
              .newest_applied_origin_ns = kNow,
              .newest_applied_age_ns = 0,
              .clock_offset_ns = -30'000'123'456,
              .clock_offset_error_ns = 20'100'000,
              .sync_done = 1000,
              .sync_to_go = 99000,
              .sync_rate_milli = 25'000'500,
              .sync_eta_ms = 3960};
  auto b = round_trip(r, FrameType::kLagReport);
  CHECK(b.stream == r.stream);
  CHECK(b.applied_seq == 123456);
  CHECK(b.flags == r.flags);
  CHECK(b.time_lag_ns == 20'500'000);
  CHECK(b.p50_ns == 20'000'000);
  CHECK(b.p95_ns == 25'000'000);
  CHECK(b.p99_ns == 31'000'000);
  CHECK(b.window_samples == 3000);
  CHECK(b.newest_applied_origin_ns == kNow);
  CHECK(b.newest_applied_age_ns == 0);
  CHECK(b.clock_offset_ns == -30'000'123'456);  // negative offsets survive (zig-zag)
  CHECK(b.clock_offset_error_ns == 20'100'000);
  CHECK(b.sync_done == 1000);
  CHECK(b.sync_to_go == 99000);
  CHECK(b.sync_rate_milli == 25'000'500);
  CHECK(b.sync_eta_ms == 3960);
  CHECK(std::string(frame_type_name(FrameType::kLagReport)) == "lag_report");

  LagReport empty{.stream = "S"};
  auto e = round_trip(empty, FrameType::kLagReport);
  CHECK(e.time_lag_ns == -1);
  CHECK(e.p99_ns == -1);
  CHECK(e.newest_applied_age_ns == -1);
  CHECK(e.clock_offset_error_ns == -1);
  CHECK(e.sync_eta_ms == -1);
  CHECK(e.flags == 0);

  check_every_truncation_refused(r);

  // A stream name over its limit is refused.
  LagReport big{.stream = std::string(kMaxNameBytes + 1, 's')};
  std::vector<uint8_t> out;
  encode(big, out);
  LagReport d;
  CHECK_FALSE(decode(split_one(out).body, d).is_ok());
}
