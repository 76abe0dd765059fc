#include "report/render.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace isthmus::report {

namespace {

using Json = nlohmann::json;

const std::string kNone = "-";
// A leader's figures for a follower come in its lag report, about once a
// second; older than this, the follower is away.
constexpr double kStaleReportMs = 3000;

// A field as text: strings as they are, numbers in decimal, absent or null "-".
std::string cell(const Json& obj, const char* key) {
  if (!obj.is_object()) return kNone;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return kNone;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_unsigned()) return std::to_string(it->get<uint64_t>());
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  return it->dump();
}

const Json& array_field(const Json& obj, const char* key) {
  static const Json kEmpty = Json::array();
  if (!obj.is_object()) return kEmpty;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return kEmpty;
  (void)it->get_ref<const Json::array_t&>();  // throws type_error unless an array
  return *it;
}

std::string sprintf_str(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

}  // namespace

void Table::add_row(std::vector<std::string> cells) {
  cells.resize(std::max(cells.size(), columns_.size()));
  rows_.push_back(std::move(cells));
}

std::string Table::render() const {
  std::vector<size_t> width(columns_.size());
  for (size_t c = 0; c < columns_.size(); ++c) {
    width[c] = columns_[c].title.size();
    for (const auto& r : rows_) width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](auto&& text_of) {
    std::string out;
    for (size_t c = 0; c < columns_.size(); ++c) {
      const std::string& t = text_of(c);
      size_t pad = width[c] - t.size();
      if (c > 0) out += "  ";
      if (columns_[c].align == Align::kRight) out.append(pad, ' ');
      out += t;
      if (columns_[c].align == Align::kLeft) out.append(pad, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line([&](size_t c) -> const std::string& { return columns_[c].title; });
  for (const auto& r : rows_) out += line([&](size_t c) -> const std::string& { return r[c]; });
  return out;
}

std::string format_bytes(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < std::size(kUnits)) {
    v /= 1024.0;
    ++u;
  }
  // One decimal below 100 (and only if rounding does not reach 1024).
  std::string num = v < 99.95 ? sprintf_str("%.1f", v) : sprintf_str("%.0f", v);
  return num + " " + kUnits[u];
}

std::string format_age(int64_t ns) {
  if (ns < 0) return kNone;
  int64_t s = ns / 1000000000;
  char buf[48];
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  }
  return buf;
}

std::string format_rtt_ms(double ms) {
  if (!(ms >= 0)) return kNone;
  if (ms < 9.995) return sprintf_str("%.2fms", ms);
  if (ms < 99.95) return sprintf_str("%.1fms", ms);
  return sprintf_str("%.0fms", ms);
}

std::string format_lag_ms(double ms) {
  if (!(ms >= 0)) return kNone;
  if (ms == 0) return "0";
  if (ms < 999.5) return format_rtt_ms(ms);
  if (ms < 59950) return sprintf_str(ms < 9995 ? "%.2fs" : "%.1fs", ms / 1000);
  return format_age(static_cast<int64_t>(ms * 1e6));
}

namespace {

double num_or(const Json& obj, const char* key, double fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return fallback;
  return it->get<double>();
}

std::string format_rate(double per_s) {
  if (per_s >= 999.5e3) return sprintf_str("%.1fM/s", per_s / 1e6);
  if (per_s >= 999.5) return sprintf_str("%.1fk/s", per_s / 1e3);
  return sprintf_str("%.0f/s", per_s);
}

}  // namespace

std::string format_progress(const Json& sync) {
  if (!sync.is_object()) return kNone;
  std::string state = cell(sync, "state");
  if (state == "caught_up") return "caught up";
  if (state != "syncing") return state;
  double done = num_or(sync, "done", 0), to_go = num_or(sync, "to_go", 0);
  std::string out = cell(sync, "kind") == "rebuild" ? "rebuilding" : "syncing";
  if (done + to_go > 0) out += sprintf_str(" %.1f%%", 100.0 * done / (done + to_go));
  double rate = num_or(sync, "rate_per_s", -1);
  if (rate > 0) out += " " + format_rate(rate);
  double eta = num_or(sync, "eta_s", -1);
  if (eta >= 0) out += " eta " + format_age(static_cast<int64_t>(eta * 1e9));
  return out;
}

Result<int64_t> parse_duration_ms(std::string_view text) {
  auto bad = [&] {
    return Status(Code::kInvalid,
                  "invalid duration '" + std::string(text) + "': use e.g. 500ms, 1s, 1.5s, 2m (a bare number is seconds)");
  };
  size_t unit_at = text.find_first_not_of("0123456789.");
  std::string_view num = text.substr(0, unit_at);
  std::string_view unit = unit_at == std::string_view::npos ? std::string_view("s") : text.substr(unit_at);
  if (num.empty() || std::count(num.begin(), num.end(), '.') > 1 || num.front() == '.' || num.back() == '.') {
    return bad();
  }
  double v = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  if (ec != std::errc() || p != num.data() + num.size()) return bad();
  double scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60000;
  } else {
    return bad();
  }
  double ms = v * scale;
  if (ms < 1 || ms > 3600000) {
    return Status(Code::kInvalid, "duration '" + std::string(text) + "' out of range (1ms..1h)");
  }
  return static_cast<int64_t>(std::llround(ms));
}

std::string render_lag(const Json& lag, bool problems_only) {
  Table t({{"STREAM"},
           {"ROLE"},
           {"LEADER"},
           {"FOLLOWER"},
           {"STATE"},
           {"LEADER SEQ", Table::Align::kRight},
           {"APPLIED SEQ", Table::Align::kRight},
           {"SEQ LAG", Table::Align::kRight},
           {"TIME LAG", Table::Align::kRight},
           {"P99", Table::Align::kRight},
           {"AGE", Table::Align::kRight},
           {"PROGRESS"}});
  auto time_lag = [](const Json& f) {
    const Json& tl = f.is_object() && f.contains("time_lag") ? f["time_lag"] : Json();
    // At the leader the figures are the follower's last report: once that
    // is older than a few reports (the follower is away), they say nothing
    // about now. The age column tells how far behind it falls.
    if (num_or(tl, "report_age_ms", -1) > kStaleReportMs) return std::pair{std::string(kNone), std::string(kNone)};
    std::string cur = format_lag_ms(num_or(tl, "current_ms", -1));
    if (cur != kNone && tl.is_object() && !tl.value("clock_offset_known", true)) cur += "?";
    return std::pair{cur, format_lag_ms(num_or(tl, "p99_ms", -1))};
  };
  auto age = [](const Json& s, const Json& f) {
    const char* key = cell(s, "role") == "leader" ? "oldest_unreplicated_age_ms" : "newest_applied_age_ms";
    return format_lag_ms(num_or(f, key, -1));
  };
  std::vector<std::string> notes;
  size_t all_rows = 0;
  for (const Json& s : array_field(lag, "streams")) {
    std::string stream = cell(s, "stream");
    std::string stream_state = cell(s, "state");
    if (s.contains("detail")) notes.push_back(stream + ": " + stream_state + ": " + cell(s, "detail"));
    if (s.contains("deletes") && s["deletes"].is_object() && !s["deletes"].value("reconciled", true)) {
      notes.push_back(stream + ": " + cell(s["deletes"], "interior") +
                      " interior deletes exceed nats.reconcile_max_deleted (" + cell(s["deletes"], "limit") +
                      "): only removals from the front and live API deletes replicate");
    }
    const Json& followers = array_field(s, "followers");
    if (followers.empty()) {
      ++all_rows;
      if (problems_only && stream_state == "replicating") continue;
      t.add_row({stream, cell(s, "role"), cell(s, "leader"), kNone, stream_state, cell(s, "last_seq"), kNone, kNone,
                 kNone, kNone, kNone, kNone});
      continue;
    }
    for (const Json& f : followers) {
      // A leader reports each follower's own state; a follower's only entry
      // is itself, whose state is the stream's.
      std::string state = f.contains("state") ? cell(f, "state") : stream_state;
      if (f.contains("detail")) notes.push_back(stream + " -> " + cell(f, "region") + ": " + state + ": " + cell(f, "detail"));
      const bool missing = f.contains("missing") && f["missing"].is_object();
      if (missing) {
        notes.push_back(stream + " -> " + cell(f, "region") + ": the replica lacks " + cell(f["missing"], "messages") +
                        " message(s) the leader holds (sequences " + cell(f["missing"], "first_seq") + ".." +
                        cell(f["missing"], "last_seq") + "): rebuild to repair");
      }
      auto [cur, p99] = time_lag(f);
      // The sync progress comes in the same report.
      bool stale = f.contains("time_lag") && num_or(f["time_lag"], "report_age_ms", -1) > kStaleReportMs;
      if (stale) {
        notes.push_back(stream + " -> " + cell(f, "region") + ": no lag report for " +
                        format_lag_ms(num_or(f["time_lag"], "report_age_ms", -1)) +
                        " (time lag and sync progress unknown)");
      }
      std::string progress = f.contains("sync") && !stale ? format_progress(f["sync"]) : kNone;
      // The initial sync is done, but the follower is behind now (a burst,
      // a pause): "caught up" next to a non-zero SEQ LAG would contradict it.
      // (Not for the few messages in flight under steady traffic, whose age
      // stays under ~100 ms: the column would flicker from call to call.)
      const char* age_key = cell(s, "role") == "leader" ? "oldest_unreplicated_age_ms" : "newest_applied_age_ms";
      const double behind_ms = num_or(f, age_key, -1);
      // Likewise with the seq lag unknown (a follower that cannot see its
      // leader: the link down, the leader stalled) once its age says it is
      // behind: "caught up" beside an age of 30 s misled (operator trial).
      if (progress == "caught up" && num_or(f, "seq_lag", -1) != 0 && (behind_ms < 0 || behind_ms >= 100)) {
        progress = "behind";
      }
      ++all_rows;
      // (No age: nothing applied yet, e.g. an empty stream; fine when
      // nothing is behind either.)
      const bool age_fine = behind_ms >= 0 ? behind_ms < 1000 : num_or(f, "seq_lag", -1) == 0;
      const bool fine = state == "replicating" && !stale && age_fine && !missing &&
                        (progress == "caught up" || progress == "behind" || progress == kNone);
      if (problems_only && fine) continue;
      t.add_row({stream, cell(s, "role"), cell(s, "leader"), cell(f, "region"), state, cell(f, "leader_last_seq"),
                 cell(f, "applied_seq"), cell(f, "seq_lag"), cur, p99, age(s, f), progress});
    }
  }
  std::string out = "region " + cell(lag, "region") + "\n\n";
  if (all_rows == 0) return out + "no replicated streams\n";
  if (problems_only) {
    out += std::to_string(t.rows()) + " of " + std::to_string(all_rows) +
           " rows need a look (not replicating, AGE 1s or more, syncing, or no recent report)\n";
    if (t.rows() > 0) out += "\n";
  }
  if (t.rows() > 0) out += t.render();
  if (!notes.empty()) {
    out += "\n";
    for (const auto& n : notes) out += n + "\n";
  }
  return out;
}

std::string render_links(const Json& links, int64_t now_ns) {
  Table t({{"PEER"},
           {"STATE"},
           {"ROLE"},
           {"SINCE", Table::Align::kRight},
           {"RTT", Table::Align::kRight},
           {"RECONNECTS", Table::Align::kRight},
           {"BYTES IN", Table::Align::kRight},
           {"BYTES OUT", Table::Align::kRight},
           {"LAST CLOSE"}});
  std::vector<std::string> notes;
  for (const Json& l : array_field(links, "links")) {
    std::string since = kNone;
    if (l.contains("since_ns") && l["since_ns"].get<int64_t>() > 0) {
      since = format_age(std::max<int64_t>(0, now_ns - l["since_ns"].get<int64_t>()));
    }
    // A link that is not up has no round trip now (the API keeps the last).
    const bool up = cell(l, "state") == "up";
    std::string rtt = up && l.contains("rtt_ms") ? format_rtt_ms(l["rtt_ms"].get<double>()) : kNone;
    auto bytes = [&](const char* key) { return l.contains(key) ? format_bytes(l[key].get<uint64_t>()) : kNone; };
    std::string last_close = cell(l, "last_close_reason");
    if (l.contains("last_close_ns") && l["last_close_ns"].get<int64_t>() > 0 && last_close != kNone) {
      last_close += " (" + format_age(std::max<int64_t>(0, now_ns - l["last_close_ns"].get<int64_t>())) + " ago)";
    }
    if (l.contains("last_close_detail")) notes.push_back(cell(l, "peer") + ": last close: " + cell(l, "last_close_detail"));
    // Down, and the failed dials since have replaced the close that took
    // the link down: say what that was.
    if (!up && l.contains("last_drop_reason") && l.contains("last_drop_ns") &&
        l["last_drop_ns"] != l.value("last_close_ns", Json())) {
      std::string drop = cell(l, "peer") + ": the link went down " +
                         format_age(std::max<int64_t>(0, now_ns - l["last_drop_ns"].get<int64_t>())) +
                         " ago: " + cell(l, "last_drop_reason");
      if (l.contains("last_drop_detail")) drop += " (" + cell(l, "last_drop_detail") + ")";
      notes.push_back(drop);
    }
    t.add_row({cell(l, "peer"), cell(l, "state"), cell(l, "role"), since, rtt, cell(l, "reconnects"),
               bytes("bytes_in"), bytes("bytes_out"), last_close});
  }
  std::string out = "region " + cell(links, "region") + "\n\n";
  if (t.rows() == 0) return out + "no peers configured\n";
  out += t.render();
  if (!notes.empty()) {
    out += "\n";
    for (const auto& n : notes) out += n + "\n";
  }
  return out;
}

std::string render_rebuild(const Json& lag, const std::string& stream, bool& finished, bool& failed) {
  finished = false;
  failed = false;
  for (const Json& s : array_field(lag, "streams")) {
    if (cell(s, "stream") != stream) continue;
    std::string state = cell(s, "state");
    std::string line = stream + " " + state;
    if (state == "replicating") {
      finished = true;
      return line + ": rebuild done\n";
    }
    if (state == "error" && s.contains("rebuild")) {
      // The daemon retries (every 2 s; later while the replica's requests
      // go unanswered, as the detail then says) and the rebuild goes on
      // once the error clears: keep watching, and say so.
      return line + ": " + cell(s, "detail") + " (retried; the rebuild goes on once it clears)\n";
    }
    if (state == "diverged" || state == "error") {
      failed = true;
      return line + ": " + cell(s, "detail") + "\n";
    }
    const Json* sync = nullptr;
    for (const Json& f : array_field(s, "followers")) {
      // The rebuild's own sync only: before it starts (foreign messages
      // going aside) the object is still the initial sync's.
      if (f.is_object() && f.contains("sync") && f["sync"].is_object() &&
          f["sync"].value("kind", std::string()) == "rebuild") {
        sync = &f["sync"];
      }
    }
    if (sync == nullptr) return line + (s.contains("detail") ? ": " + cell(s, "detail") : std::string()) + "\n";
    line += ": " + cell(*sync, "done") + " done, " + cell(*sync, "to_go") + " to go";
    auto eta = sync->find("eta_s");
    const bool eta_known = eta != sync->end() && eta->is_number();
    if (cell(*sync, "to_go") == "0" && !eta_known) {
      // The follower sets no estimate with nothing to go only while it has
      // not heard from the leader for a few seconds: "to go" is as last
      // heard, not done.
      return line + " as last heard: the leader is out of sight (link down?)\n";
    }
    if (cell(*sync, "to_go") == "0") {
      // Everything copied; the daemon is switching the stream back to
      // replicating. One line for it, not one per interval as the smoothed
      // rate falls.
      return line + ", finishing\n";
    }
    double rate = sync->value("rate_per_s", 0.0);
    if (rate > 0) line += ", " + sprintf_str("%.0f", rate) + " msg/s";
    if (eta_known) {
      // (Under a second reads "under 1s", not "about 0s" with thousands to go.)
      const double e = eta->get<double>();
      line += e < 1.0 && cell(*sync, "to_go") != "0" ? std::string(", under 1s left")
                                                      : ", about " + format_age(static_cast<int64_t>(e * 1e9)) + " left";
    }
    return line + "\n";
  }
  throw std::runtime_error("stream " + stream + " is not in the daemon's lag report");
}

std::string render_health(const Json& health) {
  std::string links;
  if (health.contains("links") && health["links"].is_object()) {
    for (const auto& [peer, state] : health["links"].items()) {
      if (!links.empty()) links += ", ";
      links += peer + " " + (state.is_string() ? state.get<std::string>() : state.dump());
    }
  }
  if (links.empty()) links = "none";
  std::string uptime = kNone;
  if (health.contains("uptime_s")) uptime = format_age(health["uptime_s"].get<int64_t>() * 1000000000);

  Table t({{""}, {""}});
  t.add_row({"status", cell(health, "status")});
  t.add_row({"region", cell(health, "region")});
  t.add_row({"version", cell(health, "version")});
  t.add_row({"uptime", uptime});
  t.add_row({"nats", cell(health, "nats")});
  t.add_row({"links", links});
  // The configuration file, and a refused reload: it leaves the daemon
  // healthy (the running configuration stands), so it is said here, not
  // among the reasons.
  if (health.contains("config") && health["config"].is_object()) {
    const Json& c = health["config"];
    std::string line = cell(c, "path");
    const int64_t reloads = c.value("reloads", int64_t{0});
    if (reloads > 0) line += " (" + std::to_string(reloads) + (reloads == 1 ? " reload)" : " reloads)");
    if (!c.value("last_reload_ok", true)) {
      line += "; the last reload was refused: " + c.value("last_reload_error", std::string("?")) +
              " (the running configuration stands)";
    }
    t.add_row({"config", line});
  }
  // Durables left on streams removed at a restart, with the command that
  // deletes each (docs/operations.md, "Dropping a stream from replication").
  if (health.contains("leftover_durables") && health["leftover_durables"].is_object()) {
    for (const auto& [stream, names] : health["leftover_durables"].items()) {
      std::string line = stream + ", removed at a restart, still has ";
      std::string cmds;
      for (const Json& n : names.is_array() ? names : Json::array()) {
        const std::string name = n.is_string() ? n.get<std::string>() : n.dump();
        line += (cmds.empty() ? "" : ", ") + name;
        cmds += (cmds.empty() ? "" : "; ") + std::string("nats consumer rm ") + stream + " " + name;
      }
      t.add_row({"leftover", line + " (each keeps what its region has not stored: " + cmds + ")"});
    }
  }
  std::string out = t.render();
  out.erase(0, out.find('\n') + 1);  // no title line
  const Json& reasons = array_field(health, "reasons");
  if (!reasons.empty()) {
    out += "reasons:\n";
    for (const Json& r : reasons) out += "  - " + (r.is_string() ? r.get<std::string>() : r.dump()) + "\n";
  }
  return out;
}

}  // namespace isthmus::report
