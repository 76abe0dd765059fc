// The human status page (GET /): the health, lag and links tables of
// isthmusctl as one self-refreshing HTML page, with every text escaped.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <string>

#include "app/status_page.h"

using nlohmann::json;
using isthmus::app::html_escape;
using isthmus::app::render_status_page;

namespace {

json health(bool ok, const std::string& reason = "") {
  json h{{"status", ok ? "ok" : "unhealthy"}, {"region", "ams"},        {"version", "0.1.0"},
         {"nats", "up"},                      {"links", {{"iad", "up"}}}, {"uptime_s", 3725},
         {"reasons", json::array()}};
  if (!reason.empty()) h["reasons"].push_back(reason);
  return h;
}

json lag(const std::string& detail = "") {
  json l = json::parse(R"({"region":"ams","streams":[{"stream":"COVENANT_COUNTRIES","leader":"iad",
    "role":"follower","state":"replicating","followers":[{"region":"ams","leader_last_seq":120,
    "applied_seq":100,"seq_lag":20,"newest_applied_age_ms":1500.0,
    "time_lag":{"current_ms":21.5,"p99_ms":31.2,"clock_offset_known":true},
    "sync":{"kind":"initial","state":"caught_up","done":100,"to_go":0}}]}]})");
  if (!detail.empty()) {
    l["streams"][0]["state"] = "error";
    l["streams"][0]["detail"] = detail;
  }
  return l;
}

json links() {
  return json::parse(R"({"region":"ams","links":[{"peer":"iad","state":"up","role":"dialer",
    "since_ns":1000000000,"rtt_ms":150.5,"reconnects":2,"bytes_in":2048,"bytes_out":40}]})");
}

constexpr int64_t kNow = 61'000'000'000;

}  // namespace

TEST_CASE("html_escape replaces the five characters HTML gives meaning to") {
  CHECK(html_escape("a<b>&\"c'") == "a&lt;b&gt;&amp;&quot;c&#39;");
  CHECK(html_escape("COVENANT_USERS -> syd: 1.5s") == "COVENANT_USERS -&gt; syd: 1.5s");
  CHECK(html_escape("") == "");
}

TEST_CASE("the page shows health, the lag table and the links table, and refreshes itself") {
  const std::string page = render_status_page(health(true), lag(), links(), 2, kNow);
  CHECK(page.rfind("<!doctype html>", 0) == 0);
  CHECK(page.find("<title>isthmusd ams: ok</title>") != std::string::npos);
  CHECK(page.find("<meta http-equiv=\"refresh\" content=\"2\">") != std::string::npos);
  // The lag row as isthmusctl prints it: stream, role, leader, follower,
  // state, sequences, time lag, p99 and age.
  CHECK(page.find("COVENANT_COUNTRIES") != std::string::npos);
  CHECK(page.find("SEQ LAG") != std::string::npos);
  CHECK(page.find("21.5ms") != std::string::npos);
  CHECK(page.find("31.2ms") != std::string::npos);
  CHECK(page.find("1.50s") != std::string::npos);
  // The link: peer, state, its age since the state began, round trip.
  CHECK(page.find("PEER") != std::string::npos);
  CHECK(page.find("1m00s") != std::string::npos);
  CHECK(page.find("150ms") != std::string::npos);
  CHECK(page.find("/?refresh=0") != std::string::npos);
}

TEST_CASE("without refresh the page does not reload; unhealthy says so in the title and names the reasons") {
  const std::string page =
      render_status_page(health(false, "link to syd is waiting (last close: stale)"), lag(), links(), 0, kNow);
  CHECK(page.find("http-equiv=\"refresh\"") == std::string::npos);
  CHECK(page.find("<title>isthmusd ams: unhealthy</title>") != std::string::npos);
  CHECK(page.find("class=\"unhealthy\"") != std::string::npos);
  CHECK(page.find("link to syd is waiting (last close: stale)") != std::string::npos);
}

TEST_CASE("text from the reports is escaped: a server's error message cannot inject markup") {
  const std::string evil = "<script>alert('x')</script>";
  const std::string page =
      render_status_page(health(false, "stream S: " + evil), lag("refused: " + evil), links(), 2, kNow);
  CHECK(page.find("<script>") == std::string::npos);
  CHECK(page.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") != std::string::npos);
  json r = health(true);
  r["region"] = "<b>";
  const std::string named = render_status_page(r, lag(), links(), 2, kNow);
  CHECK(named.find("<b>") == std::string::npos);
  CHECK(named.find("isthmusd &lt;b&gt;") != std::string::npos);
}
