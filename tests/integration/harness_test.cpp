// Checks of the integration-test harness itself: decoders, processes,
// polling, and the nats-server fixture with the JetStream helpers against a
// real server.
#include <signal.h>

#include <catch2/catch.hpp>

#include "harness.h"

using namespace harness;
using nlohmann::json;

TEST_CASE("base64, header blocks and RFC 3339 times decode", "[harness]") {
  CHECK(base64_decode("") == "");
  CHECK(base64_decode("Zg==") == "f");
  CHECK(base64_decode("Zm8=") == "fo");
  CHECK(base64_decode("Zm9v") == "foo");
  CHECK(base64_decode("aGVsbG8gd29ybGQ=") == "hello world");
  CHECK(base64_decode("AP8=") == std::string("\x00\xff", 2));
  CHECK_THROWS(base64_decode("Zm9v!"));
  CHECK_THROWS(base64_decode("Z"));

  Headers h = parse_header_block("NATS/1.0\r\nA: 1\r\nB:2\r\nA: x y\r\n\r\n");
  REQUIRE(h.size() == 3);
  CHECK(h[0] == std::pair<std::string, std::string>("A", "1"));
  CHECK(h[1] == std::pair<std::string, std::string>("B", "2"));
  CHECK(h[2] == std::pair<std::string, std::string>("A", "x y"));
  CHECK(parse_header_block("").empty());
  CHECK_THROWS(parse_header_block("HTTP/1.1\r\n\r\n"));

  CHECK(parse_rfc3339_ns("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339_ns("1970-01-01T00:00:01.5Z") == 1'500'000'000);
  CHECK(parse_rfc3339_ns("2024-02-29T12:34:56.123456789Z") == 1709210096123456789LL);
  CHECK(parse_rfc3339_ns("2024-02-29T13:34:56.123456789+01:00") == 1709210096123456789LL);
  CHECK_THROWS(parse_rfc3339_ns("yesterday"));
}

TEST_CASE("processes: spawn, signals, wait, capture", "[harness]") {
  TempDir tmp;
  Process p;
  p.spawn({"/bin/sh", "-c", "echo started; echo \"$HARNESS_X\"; exec sleep 30"}, tmp.file("sh.log"),
          {{"HARNESS_X", "from-env"}});
  REQUIRE(p.running());
  check_for(5s, [&] { return read_file(tmp.file("sh.log")).find("from-env") != std::string::npos; },
            "child output in its log");
  p.signal(SIGSTOP);
  p.signal(SIGCONT);
  CHECK_FALSE(p.wait_for(50ms).has_value());
  ExitStatus st = p.terminate(5s);
  CHECK(st.signaled);
  CHECK(st.signal == SIGTERM);
  CHECK_FALSE(p.running());

  RunResult r = run_capture({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  CHECK(r.status.exited);
  CHECK(r.status.code == 3);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");
  CHECK_THROWS(run_capture({"/nonexistent/binary"}));
  CHECK_THROWS(run_capture({"/bin/sleep", "5"}, 100ms));

  uint16_t a = free_port(), b = free_port();
  CHECK(a != 0);
  CHECK(a != b);

  CHECK_THROWS_WITH(check_for(100ms, [](std::string& s) { s = "still 41"; return false; }, "the answer"),
                    Catch::Contains("the answer") && Catch::Contains("still 41"));
  int n = 0;
  CHECK_NOTHROW(check_for(5s, [&] { return ++n == 3; }, "three polls"));
  CHECK_THROWS_WITH(check_stays(200ms, [&](std::string& s) { s = "n=" + std::to_string(n); return ++n < 6; }, "n small"),
                    Catch::Contains("n small"));
}

TEST_CASE("nats-server fixture and JetStream helpers", "[harness]") {
  TempDir tmp;
  NatsServer srv("h1", tmp.subdir("h1"));
  srv.start();
  auto varz = http_get(srv.monitor_port(), "/varz");
  REQUIRE(varz.status == 200);
  CHECK(json::parse(varz.body).value("server_name", "") == "h1");
  CHECK(http_get(srv.monitor_port(), "/no-such-page").status == 404);

  JetStream js(srv.url());
  js.create_stream({{"name", "T"},
                    {"subjects", {"t.>"}},
                    {"storage", "file"},
                    {"duplicate_window", 100'000'000}});
  CHECK_FALSE(js.stream_info("NOPE").has_value());

  OutMsg m{"t.a", {{"Nats-Msg-Id", "id-1"}, {"X-Multi", "one"}, {"X-Multi", "two"}, {"X-Other", "v: w"}},
           "{\"hello\":1}"};
  PubAck a1 = js.publish(m);
  CHECK(a1.stream == "T");
  CHECK(a1.seq == 1);
  PubAck dup = js.publish(m);  // same id within the window: deduplicated
  CHECK(dup.duplicate);
  CHECK(dup.seq == 1);
  CHECK_THROWS_WITH(js.publish({"nobody.listens", {}, "x"}), Catch::Contains("no responders"));
  CHECK_THROWS_WITH(js.publish({"t.b", {{"Nats-Expected-Last-Sequence", "99"}}, "x"}),
                    Catch::Contains("wrong last sequence"));

  std::vector<OutMsg> bulk;
  for (int i = 0; i < 5000; ++i)
    bulk.push_back({"t.bulk." + std::to_string(i % 3), {{"I", std::to_string(i)}}, std::string(i % 200, 'x')});
  auto t0 = Clock::now();
  auto acks = js.publish_bulk(bulk, 512);
  double secs = seconds_since(t0);
  std::printf("[figures] harness bulk publish: %zu messages in %.3f s = %.0f msgs/s\n", bulk.size(), secs,
              static_cast<double>(bulk.size()) / secs);
  REQUIRE(acks.size() == 5000);
  for (size_t i = 0; i < acks.size(); ++i) REQUIRE(acks[i].seq == i + 2);

  auto one = js.get_msg("T", 1);
  REQUIRE(one.has_value());
  CHECK(one->subject == "t.a");
  CHECK(one->payload == "{\"hello\":1}");
  Headers want_multi{{"X-Multi", "one"}, {"X-Multi", "two"}};
  Headers multi;
  for (const auto& kv : one->headers)
    if (kv.first == "X-Multi") multi.push_back(kv);
  CHECK(multi == want_multi);
  CHECK(std::count(one->headers.begin(), one->headers.end(),
                   std::pair<std::string, std::string>("Nats-Msg-Id", "id-1")) == 1);
  CHECK(std::count(one->headers.begin(), one->headers.end(),
                   std::pair<std::string, std::string>("X-Other", "v: w")) == 1);
  auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
  CHECK(one->time_ns > now_ns - 60'000'000'000LL);
  CHECK(one->time_ns <= now_ns + 1'000'000'000LL);

  js.delete_msg("T", 10);
  auto t1 = Clock::now();
  auto all = js.read_stream("T");
  std::printf("[figures] harness read_stream: %zu messages in %.3f s\n", all.size(), seconds_since(t1));
  REQUIRE(all.size() == 5000);  // 5001 stored, one deleted
  CHECK(all.front().seq == 1);
  CHECK(all.back().seq == 5001);
  CHECK(std::none_of(all.begin(), all.end(), [](const StoredMsg& s) { return s.seq == 10; }));
  CHECK(all[1].headers == Headers{{"I", "0"}});
  CHECK(all[1].payload.empty());
  CHECK(all[4999].payload == std::string(4999 % 200, 'x'));
  CHECK_FALSE(js.get_msg("T", 10).has_value());
  CHECK_FALSE(js.get_msg("T", 99999).has_value());

  js.purge("T", 4000);
  StreamInfo info = js.require_stream_info("T");
  CHECK(info.first_seq == 4000);
  CHECK(info.last_seq == 5001);
  CHECK(info.messages == 1002);

  // Restart on the same port and store: the data is still there, and the
  // old client reconnects.
  srv.restart();
  check_for(10s, [&](std::string& s) {
    auto i = js.stream_info("T");
    s = i ? "last_seq " + std::to_string(i->last_seq) : "no stream";
    return i && i->last_seq == 5001 && i->first_seq == 4000;
  }, "stream T intact after restart");
  CHECK(js.publish({"t.after", {}, "z"}).seq == 5002);

  srv.kill();
  CHECK_FALSE(srv.running());
  CHECK_THROWS(js.stream_info("T"));
}

TEST_CASE("mirror_check applies the header rule", "[harness]") {
  StoredMsg l;
  l.seq = 7;
  l.subject = "covenant.countries.created";
  l.headers = {{"Nats-Msg-Id", "evt-1"}, {"X-A", "1"}, {"X-A", "2"}};
  l.payload = "p";
  l.time_ns = 1700000000123456789LL;
  StoredMsg r = l;
  r.headers = {{"X-A", "1"}, {"Isthmus-Orig-Nats-Msg-Id", "evt-1"}, {"X-A", "2"},
               {"Isthmus-Origin-Region", "iad"}, {"Isthmus-Origin-Seq", "7"},
               {"Isthmus-Origin-Time", "1700000000123456789"}, {"Isthmus-Epoch", "0"}};
  CHECK(compare_replica_msg(l, r, "iad") == "");
  CHECK_THAT(compare_replica_msg(l, r, "ams"), Catch::Contains("Isthmus-Origin-Region"));

  StoredMsg bad = r;
  bad.headers.emplace_back("Nats-Msg-Id", "evt-1");
  CHECK_THAT(compare_replica_msg(l, bad, "iad"), Catch::Contains("unexpected header Nats-Msg-Id"));
  bad = r;
  bad.headers[0].second = "9";
  CHECK_THAT(compare_replica_msg(l, bad, "iad"), Catch::Contains("X-A"));
  bad = r;
  bad.payload = "q";
  CHECK_THAT(compare_replica_msg(l, bad, "iad"), Catch::Contains("payload"));

  StoredMsg l8 = l;
  l8.seq = 8;
  StoredMsg r8 = r;
  r8.seq = 8;
  r8.headers[4].second = "8";
  CHECK(compare_streams({l, l8}, {r, r8}, "iad").ok());
  auto d = compare_streams({l, l8}, {r}, "iad");
  CHECK(d.mismatches == 1);
  CHECK_THAT(d.summary(), Catch::Contains("seq 8: missing in replica"));
  CHECK(compare_streams({l, l8}, {r}, "iad", "0", 7).ok());
}
