// POST /v1/streams/<name>/rebuild: routing and answers (loopback check, 404,
// 409, 403, 202) through a real Router, with the replicator replaced by a
// recording function.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "app/api.h"

using namespace isthmus;
using nlohmann::json;

namespace {

struct Fixture {
  config::Config cfg;
  http::Router router;
  std::vector<std::string> started;
  Status answer = Status::ok();

  Fixture() {
    cfg.region.name = "ams";
    cfg.streams = {{"COVENANT_COUNTRIES", "iad"}, {"ALERTS_INCIDENTS", "iad"}, {"COVENANT_USERS", "ams"}};
    app::register_rebuild(router, &cfg, [this](const std::string& s) {
      started.push_back(s);
      return answer;
    });
  }

  http::Response post(const std::string& path, const std::string& ip, const std::string& method = "POST") {
    http::Request r;
    r.method = method;
    r.path = path;
    r.target = path;
    r.peer = http::PeerAddress{ip, 40000};
    std::optional<http::Response> out;
    router.dispatch(r, [&](http::Response resp) { out = std::move(resp); });
    REQUIRE(out.has_value());
    return *out;
  }
};

std::string error_of(const http::Response& r) {
  json j = json::parse(r.body, nullptr, false);
  return !j.is_discarded() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "";
}

}  // namespace

TEST_CASE("rebuild route: loopback peers only", "[app][rebuild]") {
  Fixture f;
  for (const char* ip : {"10.0.0.7", "192.0.2.2", "::ffff:10.1.2.3", "2001:db8::1", ""}) {
    auto r = f.post("/v1/streams/COVENANT_COUNTRIES/rebuild", ip);
    INFO(ip << ": " << r.status << " " << r.body);
    CHECK(r.status == 403);
    CHECK(r.content_type == "application/json");
    CHECK_THAT(error_of(r), Catch::Contains("loopback"));
  }
  // Refused before anything else: an unknown stream is not revealed either.
  CHECK(f.post("/v1/streams/NOPE/rebuild", "10.0.0.7").status == 403);
  CHECK(f.started.empty());
  for (const char* ip : {"127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"}) {
    auto r = f.post("/v1/streams/COVENANT_COUNTRIES/rebuild", ip);
    INFO(ip << ": " << r.body);
    CHECK(r.status == 202);
  }
  CHECK(f.started.size() == 4);
}

TEST_CASE("rebuild route: 202, 404, 409, 405", "[app][rebuild]") {
  Fixture f;
  auto ok = f.post("/v1/streams/ALERTS_INCIDENTS/rebuild", "127.0.0.1");
  CHECK(ok.status == 202);
  json j = json::parse(ok.body);
  CHECK(j["stream"] == "ALERTS_INCIDENTS");
  CHECK(j["state"] == "rebuilding");
  CHECK(j["leader"] == "iad");
  REQUIRE(f.started == std::vector<std::string>{"ALERTS_INCIDENTS"});

  auto unknown = f.post("/v1/streams/NO_SUCH/rebuild", "127.0.0.1");
  CHECK(unknown.status == 404);
  CHECK_THAT(error_of(unknown), Catch::Contains("NO_SUCH"));
  CHECK(f.post("/v1/streams/COVENANT_COUNTRIES/other", "127.0.0.1").status == 404);
  CHECK(f.post("/v1/streams/COVENANT_COUNTRIES", "127.0.0.1").status == 404);
  CHECK(f.post("/v1/streams//rebuild", "127.0.0.1").status == 404);
  CHECK(f.post("/v1/streams/a/b/rebuild", "127.0.0.1").status == 404);

  auto led = f.post("/v1/streams/COVENANT_USERS/rebuild", "127.0.0.1");
  CHECK(led.status == 409);
  CHECK_THAT(error_of(led), Catch::Contains("leads"));

  auto get = f.post("/v1/streams/ALERTS_INCIDENTS/rebuild", "127.0.0.1", "GET");
  CHECK(get.status == 405);
  CHECK(f.started.size() == 1);

  // The replicator's own refusals map to 409 / 404 / 503.
  f.answer = Status(Code::kConflict, "existing stream conflicts");
  CHECK(f.post("/v1/streams/ALERTS_INCIDENTS/rebuild", "127.0.0.1").status == 409);
  f.answer = Status(Code::kUnavailable, "down");
  CHECK(f.post("/v1/streams/ALERTS_INCIDENTS/rebuild", "127.0.0.1").status == 503);
}
