#include "app/metrics.h"

#include <charconv>
#include <map>
#include <vector>

namespace isthmus::app {

using Json = nlohmann::json;

namespace {

// Label values escape backslash, quote and newline.
std::string esc(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Shortest text that reads back as the same double.
std::string num(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

// Collects samples per metric so each family is written once, with its
// HELP and TYPE lines, in a stable order.
class Families {
 public:
  void add(const std::string& name, const char* type, const char* help, const std::string& labels,
           double value) {
    auto& f = fam_[name];
    f.type = type;
    f.help = help;
    f.lines.push_back(name + (labels.empty() ? "" : "{" + labels + "}") + " " + num(value));
  }
  // A sample of family `family` under another name (histogram _bucket,
  // _sum, _count lines).
  void add_to(const std::string& family, const char* type, const char* help, const std::string& sample,
              const std::string& labels, double value) {
    auto& f = fam_[family];
    f.type = type;
    f.help = help;
    f.lines.push_back(sample + (labels.empty() ? "" : "{" + labels + "}") + " " + num(value));
  }
  std::string text() const {
    std::string out;
    for (const auto& [name, f] : fam_) {
      out += "# HELP " + name + " " + f.help + "\n";
      out += "# TYPE " + name + " " + f.type + "\n";
      for (const auto& l : f.lines) out += l + "\n";
    }
    return out;
  }

 private:
  struct Family {
    std::string type, help;
    std::vector<std::string> lines;
  };
  std::map<std::string, Family> fam_;
};

double as_num(const Json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number()) return 0;
  return j[key].get<double>();
}

bool has_num(const Json& j, const char* key) { return j.is_object() && j.contains(key) && j[key].is_number(); }

// Prometheus `le` values: shortest form, "+Inf" for the last.
std::string le(double v) { return num(v); }

// The lag figures of one (stream, follower): time lag, ages, sync progress.
void add_lag_figures(Families& m, const Json& f, const std::string& fb, bool follower_side) {
  const char* kTimeLagHelp =
      "time lag: apply time minus origin store time, clock-corrected, never negative; at least the age of the "
      "oldest message held unapplied; 0 while caught up and idle";
  if (f.contains("time_lag") && f["time_lag"].is_object()) {
    const Json& tl = f["time_lag"];
    if (has_num(tl, "current_ms")) {
      m.add("isthmus_lag_time_seconds", "gauge", kTimeLagHelp, fb, as_num(tl, "current_ms") / 1000.0);
    }
    for (auto [key, q] : {std::pair{"p50_ms", "0.5"}, std::pair{"p95_ms", "0.95"}, std::pair{"p99_ms", "0.99"}}) {
      if (has_num(tl, key)) {
        m.add("isthmus_lag_time_window_seconds", "gauge",
              "time lag quantiles over the sliding window (about one minute)", fb + ",quantile=\"" + q + "\"",
              as_num(tl, key) / 1000.0);
      }
    }
    m.add("isthmus_lag_time_window_samples", "gauge", "applied messages in the time-lag window", fb,
          as_num(tl, "window_samples"));
    m.add("isthmus_lag_clock_offset_known", "gauge",
          "1 when the leader's clock offset is estimated (time lag is corrected)", fb,
          tl.value("clock_offset_known", false) ? 1 : 0);
    // At the leader the figures above repeat the follower's last LAG_REPORT;
    // how old that report is, on the leader's own clock, says how current
    // they are (they stay as reported while no report arrives).
    if (!follower_side && has_num(tl, "report_age_ms")) {
      m.add("isthmus_lag_report_age_seconds", "gauge",
            "(leader) age of the follower's last lag report, which the leader's time-lag and sync figures repeat",
            fb, as_num(tl, "report_age_ms") / 1000.0);
    }
    const char* kHist = "isthmus_lag_time_histogram_seconds";
    const char* kHistHelp = "time lag of every applied message since the daemon started";
    if (follower_side && tl.contains("histogram") && tl["histogram"].is_object()) {
      const Json& h = tl["histogram"];
      const Json& bounds = h.value("le_s", Json::array());
      const Json& cum = h.value("cumulative", Json::array());
      if (bounds.is_array() && cum.is_array() && cum.size() == bounds.size() + 1) {
        for (size_t i = 0; i < cum.size(); ++i) {
          std::string l = i < bounds.size() ? le(bounds[i].get<double>()) : "+Inf";
          m.add_to(kHist, "histogram", kHistHelp, std::string(kHist) + "_bucket", fb + ",le=\"" + l + "\"",
                   cum[i].get<double>());
        }
        m.add_to(kHist, "histogram", kHistHelp, std::string(kHist) + "_sum", fb, as_num(h, "sum_s"));
        m.add_to(kHist, "histogram", kHistHelp, std::string(kHist) + "_count", fb, as_num(h, "count"));
      }
    }
  }
  if (has_num(f, "oldest_unreplicated_age_ms")) {
    m.add("isthmus_lag_oldest_unreplicated_age_seconds", "gauge",
          "(leader) age of the oldest message the follower has not stored; 0 when none", fb,
          as_num(f, "oldest_unreplicated_age_ms") / 1000.0);
  }
  if (has_num(f, "newest_applied_age_ms")) {
    m.add("isthmus_lag_newest_applied_age_seconds", "gauge",
          "time since the newest applied message's origin store time; 0 when caught up", fb,
          as_num(f, "newest_applied_age_ms") / 1000.0);
  }
  if (f.contains("sync") && f["sync"].is_object()) {
    const Json& sy = f["sync"];
    m.add("isthmus_sync_syncing", "gauge", "1 while a sync (the initial one, or a rebuild's) has not yet caught up", fb,
          sy.value("state", std::string()) == "syncing" ? 1 : 0);
    m.add("isthmus_sync_done_messages", "gauge", "messages applied since the sync started", fb,
          as_num(sy, "done"));
    m.add("isthmus_sync_remaining_messages", "gauge", "messages still to apply to reach the leader", fb,
          as_num(sy, "to_go"));
    m.add("isthmus_sync_rate_messages_per_second", "gauge", "smoothed apply rate", fb,
          as_num(sy, "rate_per_s"));
    if (has_num(sy, "eta_s")) {
      m.add("isthmus_sync_eta_seconds", "gauge", "estimated time to catch up at the current rate", fb,
            as_num(sy, "eta_s"));
    }
  }
}

}  // namespace

std::string render_metrics(const Json& lag, const Json& links, const Json& health) {
  Families m;
  const std::string region = "region=\"" + esc(health.value("region", std::string())) + "\"";
  m.add("isthmus_healthy", "gauge", "1 when /healthz answers 200", region,
        health.value("status", std::string()) == "ok" ? 1 : 0);
  m.add("isthmus_nats_connected", "gauge", "1 while the local NATS connection is up", region,
        health.value("nats", std::string()) == "up" ? 1 : 0);
  if (health.contains("config") && health["config"].is_object()) {
    const Json& c = health["config"];
    m.add("isthmus_config_last_reload_successful", "gauge",
          "0 when the last SIGHUP was refused (the running configuration stands), else 1", region,
          c.value("last_reload_ok", true) ? 1 : 0);
    m.add("isthmus_config_last_reload_success_timestamp_seconds", "gauge",
          "when the running configuration was applied (start or last applied SIGHUP), Unix seconds", region,
          static_cast<double>(c.value("last_applied_ns", int64_t{0})) / 1e9);
  }
  const Json left = health.value("leftover_durables", Json::object());  // items() must not outlive it
  for (const auto& [stream, names] : left.items()) {
    m.add("isthmus_leftover_durables", "gauge",
          "Isthmus durable readers left on a stream this region no longer leads (removed at a restart); each keeps "
          "the messages its region has not stored",
          region + ",stream=\"" + esc(stream) + "\"", names.is_array() ? static_cast<double>(names.size()) : 0);
  }

  for (const auto& l : links.value("links", Json::array())) {
    std::string lb = region + ",peer=\"" + esc(l.value("peer", std::string())) + "\"";
    m.add("isthmus_link_up", "gauge", "1 while the link to the peer is up", lb,
          l.value("state", std::string()) == "up" ? 1 : 0);
    m.add("isthmus_link_reconnects_total", "counter", "links established after the first", lb,
          as_num(l, "reconnects"));
    m.add("isthmus_link_wire_bytes_sent_total", "counter", "bytes sent on the socket (after S2 and TLS)", lb,
          as_num(l, "bytes_out"));
    m.add("isthmus_link_wire_bytes_received_total", "counter", "bytes received on the socket", lb,
          as_num(l, "bytes_in"));
    m.add("isthmus_link_frame_bytes_sent_total", "counter", "frame bytes sent, before compression", lb,
          as_num(l, "frame_bytes_out"));
    m.add("isthmus_link_frame_bytes_received_total", "counter", "frame bytes received, after decompression",
          lb, as_num(l, "frame_bytes_in"));
    const Json closes = l.value("closes", Json::object());  // items() must not outlive it
    for (const auto& [reason, n] : closes.items()) {
      m.add("isthmus_link_closes_total", "counter", "connections to the peer closed, by close reason",
            lb + ",reason=\"" + esc(reason) + "\"", n.is_number() ? n.get<double>() : 0);
    }
    if (l.contains("rtt_ms")) {
      m.add("isthmus_link_rtt_seconds", "gauge", "round trip measured by heartbeats", lb,
            as_num(l, "rtt_ms") / 1000.0);
    }
    if (l.contains("clock_offset_ms")) {
      m.add("isthmus_link_clock_offset_seconds", "gauge", "the peer's clock minus ours", lb,
            as_num(l, "clock_offset_ms") / 1000.0);
      m.add("isthmus_link_clock_offset_error_seconds", "gauge", "error bound of the clock offset", lb,
            as_num(l, "clock_offset_error_ms") / 1000.0);
    }
  }

  const Json refused = links.value("refused", Json::object());
  for (const auto& [reason, n] : refused.items()) {
    m.add("isthmus_link_refused_total", "counter",
          "accepted link connections closed before they identified a peer, by close reason",
          region + ",reason=\"" + esc(reason) + "\"", n.is_number() ? n.get<double>() : 0);
  }

  for (const auto& s : lag.value("streams", Json::array())) {
    std::string stream = esc(s.value("stream", std::string()));
    std::string sb = region + ",stream=\"" + stream + "\",role=\"" + esc(s.value("role", std::string())) + "\"";
    std::string state = s.value("state", std::string());
    m.add("isthmus_stream_diverged", "gauge", "1 when the replica stopped because it diverged", sb,
          state == "diverged" ? 1 : 0);
    m.add("isthmus_stream_error", "gauge", "1 while the stream cannot be served (see /v1/lag detail)", sb,
          state == "error" ? 1 : 0);
    // (An error during a rebuild is state "error", with "rebuild" set.)
    m.add("isthmus_stream_rebuilding", "gauge", "1 while the replica is being rebuilt from the leader", sb,
          state == "rebuilding" || s.contains("rebuild") ? 1 : 0);
    if (s.contains("deletes") && s["deletes"].is_object()) {
      const Json& d = s["deletes"];
      m.add("isthmus_stream_interior_deletes", "gauge", "(leader) messages deleted inside the stream's range", sb,
            as_num(d, "interior"));
      m.add("isthmus_stream_deletes_reconciled", "gauge",
            "(leader) 1 while deletes are reconciled from the stream's deleted list (nats.reconcile_max_deleted)",
            sb, d.value("reconciled", false) ? 1 : 0);
    }
    for (const auto& f : s.value("followers", Json::array())) {
      std::string fb = sb + ",follower=\"" + esc(f.value("region", std::string())) + "\"";
      // (A follower that has not heard from its leader since it started
      // knows neither the leader's last sequence nor its lag: no sample.)
      if (has_num(f, "leader_last_seq")) {
        m.add("isthmus_lag_leader_last_sequence", "gauge", "the leader stream's last sequence", fb,
              as_num(f, "leader_last_seq"));
      }
      // (A leader restarted since it last heard from a follower does not
      // know what that follower holds until it subscribes again: no sample.)
      if (has_num(f, "applied_seq")) {
        m.add("isthmus_lag_applied_sequence", "gauge",
              "highest sequence stored in the replica, nothing missing below", fb, as_num(f, "applied_seq"));
      }
      if (has_num(f, "seq_lag")) {
        m.add("isthmus_lag_messages", "gauge", "sequence lag: leader last sequence minus applied sequence", fb,
              as_num(f, "seq_lag"));
      }
      add_lag_figures(m, f, fb, s.value("role", std::string()) == "follower");
      if (f.contains("messages_applied")) {
        m.add("isthmus_replicated_messages_total", "counter", "messages written into the replica", fb,
              as_num(f, "messages_applied"));
        m.add("isthmus_replicated_bytes_total", "counter", "payload bytes written into the replica", fb,
              as_num(f, "bytes_applied"));
        m.add("isthmus_apply_errors_total", "counter", "replica writes refused or failed", fb,
              as_num(f, "apply_errors"));
        if (f.contains("skipped")) {
          m.add("isthmus_skipped_sequences_total", "counter",
                "sequences the leader removed before this region stored them (limits, purges), skipped", fb,
                as_num(f, "skipped"));
        }
      }
      if (f.contains("missing") && f["missing"].is_object()) {
        m.add("isthmus_replica_missing_messages", "gauge",
              "messages the leader holds that the replica lost at its end (repair: rebuild)", fb,
              as_num(f["missing"], "messages"));
      }
      if (f.contains("foreign_found")) {
        m.add("isthmus_foreign_messages_found", "gauge", "foreign messages found in the diverged replica", fb,
              as_num(f, "foreign_found"));
        m.add("isthmus_foreign_messages_kept", "gauge", "of them, kept aside in the side stream", fb,
              as_num(f, "foreign_kept"));
      }
      if (f.contains("messages_sent")) {
        m.add("isthmus_sent_messages_total", "counter", "messages sent to the follower", fb,
              as_num(f, "messages_sent"));
        m.add("isthmus_sent_bytes_total", "counter", "message bytes sent to the follower", fb,
              as_num(f, "bytes_sent"));
      }
    }
  }
  return m.text();
}

}  // namespace isthmus::app
