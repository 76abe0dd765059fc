// The Prometheus rendering of the JSON reports.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

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
  // An error while rebuilding: both.
  json e = lag("error");
  e["streams"][0]["rebuild"] = "syncing";
  t = render_metrics(e, links(), health(false));
  CHECK(has_line(t, "isthmus_stream_rebuilding{region=\"ams\",stream=\"COVENANT_COUNTRIES\",role=\"follower\"} 1"));
  CHECK(has_line(t, "isthmus_stream_error{region=\"ams\",stream=\"COVENANT_COUNTRIES\",role=\"follower\"} 1"));
}

TEST_CASE("metrics count durables left on streams removed at a restart", "[metrics]") {
  json h = health(true);
  h["leftover_durables"] = json::parse(R"({"COVENANT_USERS":["isthmus_ams_0","isthmus_syd_1"],"OLD":["isthmus_ams_3"]})");
  std::string t = render_metrics(json{{"streams", json::array()}}, json{{"links", json::array()}}, h);
  CHECK(has_line(t, "isthmus_leftover_durables{region=\"ams\",stream=\"COVENANT_USERS\"} 2"));
  CHECK(has_line(t, "isthmus_leftover_durables{region=\"ams\",stream=\"OLD\"} 1"));
  CHECK(has_line(t, "# TYPE isthmus_leftover_durables gauge"));
  h["leftover_durables"] = json::object();
  t = render_metrics(json{{"streams", json::array()}}, json{{"links", json::array()}}, h);
  CHECK(t.find("isthmus_leftover_durables") == std::string::npos);
}

TEST_CASE("metric label values are escaped", "[metrics]") {
  json h = health(true);
  h["region"] = "a\"b\\c";
  std::string t = render_metrics(json{{"streams", json::array()}}, json{{"links", json::array()}}, h);
  CHECK(has_line(t, "isthmus_healthy{region=\"a\\\"b\\\\c\"} 1"));
}

namespace {

// A follower entry and a leader entry with every lag figure (as
// Follower::lag_json and Leader::lag_json produce them).
json full_lag() {
  return json::parse(R"({"region":"ams","streams":[
    {"stream":"COVENANT_COUNTRIES","leader":"iad","role":"follower","state":"syncing",
     "followers":[{"region":"ams","leader_last_seq":120,"applied_seq":100,"seq_lag":20,
       "messages_applied":100,"bytes_applied":12800,"apply_errors":0,
       "time_lag":{"current_ms":21.5,"p50_ms":20.25,"p95_ms":30.0,"p99_ms":45.5,"window_samples":100,"window_s":60,
         "clock_offset_known":true,"clock_offset_ms":-30000.5,"clock_offset_error_ms":20.1,
         "uncorrected_ms":30021.0,"clamped":false,"unrecorded_without_offset":3,
         "histogram":{"le_s":[0.01,0.025,0.05],"cumulative":[0,60,98,100],"sum_s":2.5,"count":100}},
       "newest_applied_age_ms":1500.0,
       "sync":{"state":"syncing","done":100,"to_go":20,"rate_per_s":50.5,"eta_s":0.4}}]},
    {"stream":"COVENANT_USERS","leader":"ams","role":"leader","state":"replicating",
     "followers":[{"region":"iad","state":"replicating","leader_last_seq":10,"applied_seq":10,"seq_lag":0,
       "messages_sent":10,"bytes_sent":1000,"oldest_unreplicated_age_ms":0,"newest_applied_age_ms":0,
       "time_lag":{"current_ms":1.0,"p50_ms":1.0,"p95_ms":null,"p99_ms":null,"window_samples":1,"window_s":60,
         "clock_offset_known":false,"clock_offset_ms":null,"clock_offset_error_ms":null,"report_age_ms":300},
       "sync":{"state":"caught_up","done":10,"to_go":0,"rate_per_s":0,"eta_s":0}}]}]})");
}

}  // namespace

TEST_CASE("metrics render time lag, window quantiles, the histogram, ages and sync progress", "[metrics]") {
  std::string t = render_metrics(full_lag(), links(), health(true));
  const std::string f = R"(region="ams",stream="COVENANT_COUNTRIES",role="follower",follower="ams")";
  const std::string l = R"(region="ams",stream="COVENANT_USERS",role="leader",follower="iad")";
  CHECK(has_line(t, "isthmus_lag_time_seconds{" + f + "} 0.0215"));
  CHECK(has_line(t, "isthmus_lag_time_window_seconds{" + f + ",quantile=\"0.5\"} 0.02025"));
  CHECK(has_line(t, "isthmus_lag_time_window_seconds{" + f + ",quantile=\"0.95\"} 0.03"));
  CHECK(has_line(t, "isthmus_lag_time_window_seconds{" + f + ",quantile=\"0.99\"} 0.0455"));
  CHECK(has_line(t, "isthmus_lag_time_window_samples{" + f + "} 100"));
  CHECK(has_line(t, "isthmus_lag_clock_offset_known{" + f + "} 1"));
  // A real Prometheus histogram: cumulative buckets, +Inf equals _count.
  CHECK(has_line(t, "# TYPE isthmus_lag_time_histogram_seconds histogram"));
  CHECK(has_line(t, "isthmus_lag_time_histogram_seconds_bucket{" + f + ",le=\"0.01\"} 0"));
  CHECK(has_line(t, "isthmus_lag_time_histogram_seconds_bucket{" + f + ",le=\"0.025\"} 60"));
  CHECK(has_line(t, "isthmus_lag_time_histogram_seconds_bucket{" + f + ",le=\"0.05\"} 98"));
  CHECK(has_line(t, "isthmus_lag_time_histogram_seconds_bucket{" + f + ",le=\"+Inf\"} 100"));
  CHECK(has_line(t, "isthmus_lag_time_histogram_seconds_sum{" + f + "} 2.5"));
  CHECK(has_line(t, "isthmus_lag_time_histogram_seconds_count{" + f + "} 100"));
  CHECK(has_line(t, "isthmus_lag_newest_applied_age_seconds{" + f + "} 1.5"));
  CHECK(has_line(t, "isthmus_replicated_bytes_total{" + f + "} 12800"));
  CHECK(has_line(t, "isthmus_sync_syncing{" + f + "} 1"));
  CHECK(has_line(t, "isthmus_sync_done_messages{" + f + "} 100"));
  CHECK(has_line(t, "isthmus_sync_remaining_messages{" + f + "} 20"));
  CHECK(has_line(t, "isthmus_sync_rate_messages_per_second{" + f + "} 50.5"));
  CHECK(has_line(t, "isthmus_sync_eta_seconds{" + f + "} 0.4"));
  // Leader side: its own oldest-unreplicated age, the follower's reported
  // figures (no histogram: buckets stay at the follower), unknowns omitted.
  CHECK(has_line(t, "isthmus_lag_oldest_unreplicated_age_seconds{" + l + "} 0"));
  CHECK(has_line(t, "isthmus_lag_time_seconds{" + l + "} 0.001"));
  CHECK(has_line(t, "isthmus_lag_clock_offset_known{" + l + "} 0"));
  CHECK(has_line(t, "isthmus_sync_syncing{" + l + "} 0"));
  // ... with the age of the report they come from (leader side only).
  CHECK(has_line(t, "isthmus_lag_report_age_seconds{" + l + "} 0.3"));
  CHECK(t.find("isthmus_lag_report_age_seconds{" + f) == std::string::npos);
  CHECK(t.find("isthmus_lag_time_window_seconds{" + l + ",quantile=\"0.99\"}") == std::string::npos);
  CHECK(t.find("isthmus_lag_time_histogram_seconds_count{" + l) == std::string::npos);
  // The histogram family is declared once.
  size_t pos = 0, count = 0;
  while ((pos = t.find("# TYPE isthmus_lag_time_histogram_seconds ", pos)) != std::string::npos) {
    ++count;
    ++pos;
  }
  CHECK(count == 1);
}

// docs/http-api.md lists every metric; the Grafana dashboard in docs/ and
// the renderer may use only those.
namespace {

std::string source_file(const std::string& rel) {
  const char* dir = std::getenv("ISTHMUS_SOURCE_DIR");
  REQUIRE(dir != nullptr);  // set by meson test (tests/meson.build)
  std::ifstream in(std::string(dir) + "/" + rel);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// name -> type, from the rows "| `isthmus_...` | type | ..." of the table.
std::map<std::string, std::string> documented_metrics() {
  std::map<std::string, std::string> out;
  std::istringstream in(source_file("docs/http-api.md"));
  std::string line;
  std::regex row(R"(^\| `(isthmus_[a-z0-9_]+)` \| (gauge|counter|histogram) \|)");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, row)) out[m[1]] = m[2];
  }
  return out;
}

// Whether a name used in a query is a documented metric (histogram series
// add _bucket, _sum, _count).
bool known(const std::map<std::string, std::string>& docs, const std::string& name) {
  if (docs.count(name) != 0) return true;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string sfx(suffix);
    if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
      auto it = docs.find(name.substr(0, name.size() - sfx.size()));
      if (it != docs.end() && it->second == "histogram") return true;
    }
  }
  return false;
}

void collect_strings(const json& j, std::vector<std::string>& out) {
  if (j.is_string()) {
    out.push_back(j.get<std::string>());
  } else if (j.is_array() || j.is_object()) {
    for (const auto& v : j) collect_strings(v, out);
  }
}

}  // namespace

TEST_CASE("the Grafana dashboard queries only metrics listed in docs/http-api.md", "[metrics][docs]") {
  auto docs = documented_metrics();
  REQUIRE(docs.size() >= 30);
  CHECK(docs["isthmus_lag_time_histogram_seconds"] == "histogram");
  json dash = json::parse(source_file("docs/grafana/isthmus.json"));  // throws unless valid JSON
  REQUIRE(dash.contains("panels"));
  std::vector<std::string> strings;
  collect_strings(dash, strings);
  std::set<std::string> used;
  std::regex metric(R"(isthmus_[a-z0-9_]+)");
  for (const auto& s : strings) {
    for (auto it = std::sregex_iterator(s.begin(), s.end(), metric); it != std::sregex_iterator(); ++it) {
      std::string name = it->str();
      if (name == "isthmus_replication" || name.rfind("isthmus-", 0) == 0) continue;
      used.insert(name);
    }
  }
  REQUIRE(used.size() >= 20);
  for (const auto& name : used) {
    INFO(name);
    CHECK(known(docs, name));
  }
  // The lag figures this issue adds are all on the dashboard.
  for (const char* name :
       {"isthmus_lag_messages", "isthmus_lag_time_seconds", "isthmus_lag_time_window_seconds",
        "isthmus_lag_time_histogram_seconds_bucket", "isthmus_lag_oldest_unreplicated_age_seconds",
        "isthmus_lag_newest_applied_age_seconds", "isthmus_replicated_messages_total", "isthmus_replicated_bytes_total",
        "isthmus_apply_errors_total", "isthmus_stream_diverged", "isthmus_sync_remaining_messages",
        "isthmus_link_frame_bytes_sent_total", "isthmus_link_wire_bytes_sent_total", "isthmus_link_reconnects_total"}) {
    INFO(name);
    CHECK(used.count(name) == 1);
  }
}

TEST_CASE("every metric /metrics renders is listed in docs/http-api.md with its type", "[metrics][docs]") {
  auto docs = documented_metrics();
  json h = health(true);  // (with the optional parts)
  h["config"] = json::parse(R"({"path":"/etc/isthmus/isthmus.toml","reloads":1,"last_reload_ok":true,
    "last_applied_ns":1})");
  h["leftover_durables"] = json::parse(R"({"OLD":["isthmus_ams_3"]})");
  std::string t = render_metrics(full_lag(), links(), h);
  std::istringstream in(t);
  std::string line;
  std::regex type_line(R"(^# TYPE (\S+) (\S+)$)");
  int families = 0;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, type_line)) continue;
    ++families;
    INFO(line);
    REQUIRE(docs.count(m[1]) == 1);
    CHECK(docs[m[1]] == m[2].str());
  }
  CHECK(families >= 30);
}
