#include "app/api.h"

#include <charconv>

#include "app/metrics.h"
#include "app/status_page.h"
#include "isthmus_build.h"
#include "loop/timer.h"

namespace isthmus::app {

using Json = nlohmann::json;

Json health_report(const ApiSources& src, bool& healthy) {
  Json reasons = Json::array();
  bool nats_up = src.replicator->nats_up();
  if (!nats_up) {
    std::string why = "local NATS connection down";
    if (src.nats->connected() && !src.replicator->data_error().empty()) {
      // cnats' connection stands; the data connection does not.
      why += " (data connection: " + src.replicator->data_error() + ")";
    } else if (!src.nats->last_error().empty()) {
      why += " (" + src.nats->last_error() + ")";
    }
    reasons.push_back(why);
  }
  Json links = Json::object();
  // A listener refuses a peer's bad certificate before it knows the peer:
  // a peer it waits for is told of such a refusal in the last minute.
  // (TLS and identity refusals only: a load balancer's probe or a scanner
  // says nothing about a peer.)
  const auto& lr = src.links->last_refused();
  const bool tls_refusal = lr.reason == "tls_handshake_failed" || lr.reason == "certificate_rejected" ||
                           lr.reason == "name_mismatch" || lr.reason == "pin_mismatch" || lr.reason == "unknown_peer";
  const int64_t refused_ago_ns = !tls_refusal ? -1 : loop::wall_ns() - lr.wall_ns;
  for (const auto& p : src.links->status()) {
    links[p.name] = p.state;
    if (p.state != "up") {
      // A goodbye carries the peer's own reason (e.g. "peer_removed: removed
      // from iad's configuration"): that is the news, not "peer_goaway".
      const bool told = p.last_close_reason == "peer_goaway" && !p.last_close_detail.empty();
      std::string why = "link to " + p.name + " is " + p.state +
                        (p.last_close_reason.empty()
                             ? ""
                             : " (last close: " + p.last_close_reason + (told ? ": " + p.last_close_detail : "") + ")");
      if (!p.dialer && refused_ago_ns >= 0 && refused_ago_ns < 60'000'000'000) {
        // Its time, not an age: the same refusal reads the same (alerts).
        why += "; a connection from " + lr.from + " was refused at " + std::to_string(lr.wall_ns / 1000000000) +
               " (Unix s) before it named its region: " + lr.reason + (lr.detail.empty() ? "" : ": " + lr.detail) +
               " (/v1/links \"last_refused\")";
      }
      reasons.push_back(why);
    }
  }
  for (const auto& p : src.replicator->problems()) reasons.push_back(p);
  healthy = reasons.empty();
  Json out;
  out["status"] = healthy ? "ok" : "unhealthy";
  out["region"] = src.cfg->region.name;
  out["version"] = ISTHMUS_VERSION;
  out["nats"] = nats_up ? "up" : "down";
  out["links"] = links;
  out["reasons"] = reasons;
  out["uptime_s"] = (loop::wall_ns() - src.started_ns) / 1000000000;
  if (src.reload != nullptr) {
    // A refused reload is not a health problem (the running configuration
    // stands), but an operator must see it: here and in the metrics.
    Json c;
    c["path"] = src.cfg->path;
    c["reloads"] = src.reload->reloads;
    c["last_reload_ok"] = src.reload->last_ok;
    c["last_reload_ns"] = src.reload->last_ns;
    c["last_applied_ns"] = src.reload->last_ok_ns;
    if (!src.reload->last_ok) c["last_reload_error"] = src.reload->last_error;
    out["config"] = std::move(c);
  }
  // Durable readers left on streams removed at a restart: not an outage
  // either, but each keeps its interest stream's messages for good.
  Json left = Json::object();
  for (const auto& [stream, names] : src.replicator->leftover_durables()) left[stream] = names;
  out["leftover_durables"] = std::move(left);
  return out;
}

Json links_report(const ApiSources& src) {
  Json arr = Json::array();
  for (const auto& p : src.links->status()) {
    Json j;
    j["peer"] = p.name;
    j["address"] = p.address;
    j["state"] = p.state;
    j["role"] = p.dialer ? "dialer" : "listener";
    j["since_ns"] = p.since_ns;
    if (p.rtt_ns >= 0) j["rtt_ms"] = static_cast<double>(p.rtt_ns) / 1e6;
    if (p.clock_offset_error_ns >= 0) {
      j["clock_offset_ms"] = static_cast<double>(p.clock_offset_ns) / 1e6;
      j["clock_offset_error_ms"] = static_cast<double>(p.clock_offset_error_ns) / 1e6;
    }
    j["compression"] = p.compressed ? "s2" : "none";
    // Wire bytes (after S2 and TLS) and frame bytes (before), both directions.
    j["frame_bytes_in"] = p.frame_bytes_in;
    j["frame_bytes_out"] = p.frame_bytes_out;
    if (p.frame_bytes_out > 0) {
      j["compression_ratio_out"] = static_cast<double>(p.bytes_out) / static_cast<double>(p.frame_bytes_out);
    }
    if (p.frame_bytes_in > 0) {
      j["compression_ratio_in"] = static_cast<double>(p.bytes_in) / static_cast<double>(p.frame_bytes_in);
    }
    if (p.send_budget > 0) {
      // Send pacing: what the socket drains, and what may stand in front of
      // a heartbeat because of it (docs/architecture.md).
      j["drain_rate_bytes_per_s"] = p.drain_rate;
      j["send_budget_bytes"] = p.send_budget;
      j["group_limit_bytes"] = p.group_limit;
    }
    j["reconnects"] = p.reconnects;
    j["bytes_in"] = p.bytes_in;
    j["bytes_out"] = p.bytes_out;
    j["frames_in"] = p.frames_in;
    j["frames_out"] = p.frames_out;
    if (!p.last_close_reason.empty()) {
      j["last_close_reason"] = p.last_close_reason;
      if (!p.last_close_detail.empty()) j["last_close_detail"] = p.last_close_detail;
      j["last_close_ns"] = p.last_close_ns;
    }
    if (!p.last_drop_reason.empty()) {
      j["last_drop_reason"] = p.last_drop_reason;
      if (!p.last_drop_detail.empty()) j["last_drop_detail"] = p.last_drop_detail;
      j["last_drop_ns"] = p.last_drop_ns;
    }
    j["closes"] = Json::object();
    for (const auto& [reason, n] : p.closes) j["closes"][reason] = n;
    arr.push_back(j);
  }
  // Accepted connections closed before they identified a peer, by reason.
  Json refused = Json::object();
  for (const auto& [reason, n] : src.links->refused()) refused[reason] = n;
  Json out{{"region", src.cfg->region.name}, {"links", arr}, {"refused", refused}};
  if (const auto& lr = src.links->last_refused(); !lr.reason.empty()) {
    out["last_refused"] = {{"reason", lr.reason}, {"detail", lr.detail}, {"from", lr.from}, {"ns", lr.wall_ns}};
  }
  return out;
}

void register_rebuild(http::Router& router, const config::Config* cfg, RebuildStarter start) {
  router.add_prefix("POST", "/v1/streams/", [cfg, start](const http::Request& req) {
    auto error = [](int status, const std::string& msg) {
      return http::Response::json(status, Json{{"error", msg}}.dump());
    };
    if (!req.peer.is_loopback()) {
      return error(403, "rebuild is accepted from a loopback address only (request from " +
                            (req.peer.ip.empty() ? std::string("an unknown address") : req.peer.ip) + ")");
    }
    constexpr std::string_view kPrefix = "/v1/streams/";
    constexpr std::string_view kSuffix = "/rebuild";
    std::string_view path = req.path;
    if (path.size() <= kPrefix.size() + kSuffix.size() || path.substr(path.size() - kSuffix.size()) != kSuffix) {
      return error(404, "not found");
    }
    std::string name =
        http::percent_decode(path.substr(kPrefix.size(), path.size() - kPrefix.size() - kSuffix.size()), false);
    if (name.find('/') != std::string::npos) return error(404, "not found");
    const config::Stream* stream = nullptr;
    for (const auto& s : cfg->streams) {
      if (s.name == name) stream = &s;
    }
    if (stream == nullptr) return error(404, "no replicated stream " + name);
    if (stream->leader == cfg->region.name) {
      return error(409, "region " + cfg->region.name + " leads stream " + name + ": only a replica can be rebuilt");
    }
    Status st = start(name);
    if (!st) {
      int code = st.code() == Code::kNotFound ? 404 : st.code() == Code::kConflict ? 409 : 503;
      return error(code, st.message());
    }
    Json ok = {{"stream", name},
               {"state", "rebuilding"},
               {"leader", stream->leader},
               {"progress", "GET /v1/lag"}};
    return http::Response::json(202, ok.dump());
  });
}

void register_api(http::Router& router, const ApiSources& src) {
  // Copies of the pointers: src itself may be a temporary.
  ApiSources s = src;
  router.add("GET", "/healthz", [s](const http::Request&) {
    bool healthy = false;
    Json j = health_report(s, healthy);
    return http::Response::json(healthy ? 200 : 503, j.dump());
  });
  router.add_async("GET", "/v1/lag", [s](const http::Request&, http::Responder respond) {
    // The leader's last sequence is re-read first, so the lag is current.
    s.replicator->refresh(
        [s, respond] { respond(http::Response::json(200, s.replicator->lag_json().dump())); });
  });
  router.add_async("GET", "/metrics", [s](const http::Request&, http::Responder respond) {
    s.replicator->refresh([s, respond] {
      bool healthy = false;
      Json health = health_report(s, healthy);
      std::string text = render_metrics(s.replicator->lag_json(), links_report(s), health);
      respond(http::Response::text(200, std::move(text), "text/plain; version=0.0.4; charset=utf-8"));
    });
  });
  router.add_async("GET", "/", [s](const http::Request& req, http::Responder respond) {
    // ?refresh=N: reload every N s (0: never; default 2, at most 3600).
    int refresh_s = 2;
    if (auto r = req.query_param("refresh")) {
      int v = -1;
      auto [p, ec] = std::from_chars(r->data(), r->data() + r->size(), v);
      if (ec != std::errc() || p != r->data() + r->size() || v < 0 || v > 3600) {
        respond(http::Response::error(400, "refresh: a number of seconds from 0 to 3600"));
        return;
      }
      refresh_s = v;
    }
    s.replicator->refresh([s, respond, refresh_s] {
      // The renderers throw on a field of an unexpected type: never out of
      // this callback (it runs from the loop, not from the router's guard).
      try {
        bool healthy = false;
        Json health = health_report(s, healthy);
        std::string page =
            render_status_page(health, s.replicator->lag_json(), links_report(s), refresh_s, loop::wall_ns());
        respond(http::Response::text(200, std::move(page), "text/html; charset=utf-8"));
      } catch (const std::exception& e) {
        respond(http::Response::error(500, std::string("status page: ") + e.what()));
      }
    });
  });
  router.add("GET", "/v1/links", [s](const http::Request&) {
    return http::Response::json(200, links_report(s).dump());
  });
  register_rebuild(router, s.cfg, [s](const std::string& stream) { return s.replicator->request_rebuild(stream); });
}

}  // namespace isthmus::app
