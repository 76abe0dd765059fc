// The Prometheus rendering of the JSON reports.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "app/metrics.h"

using nlohmann::json;
using isthmus::app::render_metrics;

namespace {

json health(bool ok) {
  return json{{"status", ok ? "ok" : "unhealthy"}, {"region", "ams"}, {"nats", "up"}};
}

json links() {
  return json::parse(R"({"region":"ams","links":[{"peer":"iad","state":"up","reconnects":2,
    "bytes_in":100,"bytes_out":40,"frame_bytes_in":300,"frame_bytes_out":50,"rtt_ms":150.5,
    "clock_offset_ms":-2.0,"clock_offset_error_ms":0.25,"closes":{"stale":1,"send_stalled":3}}],
    "refused":{"name_mismatch":2,"tls_handshake_failed":5}})");
}

json lag(const std::string& state) {
  return json::parse(R"({"region":"ams","streams":[{"stream":"COVENANT_COUNTRIES","leader":"iad",
    "role":"follower","state":")" + state + R"(","followers":[{"region":"ams","leader_last_seq":120,
    "applied_seq":100,"seq_lag":20,"messages_applied":100,"apply_errors":1}]}]})");
}

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) {
    if (l == line) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("metrics render lag, links and health with labels and types", "[metrics]") {
  std::string t = render_metrics(lag("replicating"), links(), health(true));
  const std::string f = R"(region="ams",stream="COVENANT_COUNTRIES",role="follower",follower="ams")";
  CHECK(has_line(t, "isthmus_healthy{region=\"ams\"} 1"));
  CHECK(has_line(t, "isthmus_nats_connected{region=\"ams\"} 1"));
  CHECK(has_line(t, "isthmus_lag_messages{" + f + "} 20"));
  CHECK(has_line(t, "isthmus_lag_applied_sequence{" + f + "} 100"));
  CHECK(has_line(t, "isthmus_lag_leader_last_sequence{" + f + "} 120"));
  CHECK(has_line(t, "isthmus_apply_errors_total{" + f + "} 1"));
  CHECK(has_line(t, "isthmus_link_up{region=\"ams\",peer=\"iad\"} 1"));
  CHECK(has_line(t, "isthmus_link_reconnects_total{region=\"ams\",peer=\"iad\"} 2"));
  CHECK(has_line(t, "isthmus_link_wire_bytes_sent_total{region=\"ams\",peer=\"iad\"} 40"));
  CHECK(has_line(t, "isthmus_link_frame_bytes_sent_total{region=\"ams\",peer=\"iad\"} 50"));
  CHECK(has_line(t, "isthmus_link_rtt_seconds{region=\"ams\",peer=\"iad\"} 0.1505"));
  CHECK(has_line(t, "isthmus_link_closes_total{region=\"ams\",peer=\"iad\",reason=\"send_stalled\"} 3"));
  CHECK(has_line(t, "isthmus_link_closes_total{region=\"ams\",peer=\"iad\",reason=\"stale\"} 1"));
  CHECK(has_line(t, "isthmus_link_refused_total{region=\"ams\",reason=\"name_mismatch\"} 2"));
  CHECK(has_line(t, "isthmus_link_refused_total{region=\"ams\",reason=\"tls_handshake_failed\"} 5"));
  CHECK(has_line(t, "# TYPE isthmus_link_refused_total counter"));
  CHECK(has_line(t, "isthmus_stream_diverged{region=\"ams\",stream=\"COVENANT_COUNTRIES\",role=\"follower\"} 0"));
  CHECK(has_line(t, "# TYPE isthmus_lag_messages gauge"));
  CHECK(has_line(t, "# TYPE isthmus_link_reconnects_total counter"));
  // One HELP/TYPE pair per family.
  size_t pos = 0, count = 0;
  while ((pos = t.find("# TYPE isthmus_lag_messages ", pos)) != std::string::npos) {
    ++count;
    ++pos;
  }
  CHECK(count == 1);
}

TEST_CASE("metrics show divergence and unhealthiness", "[metrics]") {
  std::string t = render_metrics(lag("diverged"), links(), health(false));
  CHECK(has_line(t, "isthmus_stream_diverged{region=\"ams\",stream=\"COVENANT_COUNTRIES\",role=\"follower\"} 1"));
  CHECK(has_line(t, "isthmus_healthy{region=\"ams\"} 0"));
}

TEST_CASE("metrics show foreign messages and a rebuild", "[metrics]") {
  json l = lag("diverged");
  l["streams"][0]["followers"][0]["foreign_found"] = 3;
  l["streams"][0]["followers"][0]["foreign_kept"] = 2;
  std::string t = render_metrics(l, links(), health(false));
  const std::string fb = "{region=\"ams\",stream=\"COVENANT_COUNTRIES\",role=\"follower\",follower=\"ams\"}";
  CHECK(has_line(t, "isthmus_foreign_messages_found" + fb + " 3"));
  CHECK(has_line(t, "isthmus_foreign_messages_kept" + fb + " 2"));
  CHECK(has_line(t, "isthmus_stream_rebuilding{region=\"ams\",stream=\"COVENANT_COUNTRIES\",role=\"follower\"} 0"));
  t = render_metrics(lag("rebuilding"), links(), health(false));
  CHECK(has_line(t, "isthmus_stream_rebuilding{region=\"ams\",stream=\"COVENANT_COUNTRIES\",role=\"follower\"} 1"));
  CHECK(t.find("isthmus_foreign_messages_found") == std::string::npos);
}

TEST_CASE("metric label values are escaped", "[metrics]") {
  json h = health(true);
  h["region"] = "a\"b\\c";
  std::string t = render_metrics(json{{"streams", json::array()}}, json{{"links", json::array()}}, h);
  CHECK(has_line(t, "isthmus_healthy{region=\"a\\\"b\\\\c\"} 1"));
}
