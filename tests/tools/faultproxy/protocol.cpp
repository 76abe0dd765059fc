#include "protocol.h"

#include <charconv>
#include <vector>

namespace faultproxy {

const char* dir_name(int dir) { return dir == kA2B ? "a2b" : "b2a"; }

std::string DirSettings::format() const {
  return "delay_ms=" + std::to_string(delay_ms) + " jitter_ms=" + std::to_string(jitter_ms) +
         " rate_bps=" + std::to_string(rate_bps) + " slice=" + std::to_string(slice) +
         " stall=" + (stall ? "on" : "off") + " cut_after=" + std::to_string(cut_after) +
         " queue_bytes=" + std::to_string(queue_bytes);
}

void SettingsPatch::apply(DirSettings* s) const {
  if (delay_ms) s->delay_ms = *delay_ms;
  if (jitter_ms) s->jitter_ms = *jitter_ms;
  if (rate_bps) s->rate_bps = *rate_bps;
  if (slice) s->slice = *slice;
  if (stall) s->stall = *stall;
  if (cut_after) s->cut_after = *cut_after;
  if (queue_bytes) s->queue_bytes = *queue_bytes;
}

namespace {

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

bool parse_u64(std::string_view s, uint64_t max, uint64_t* out) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > max) return false;
  *out = v;
  return true;
}

bool parse_on_off(std::string_view s, bool* out) {
  if (s == "on") {
    *out = true;
    return true;
  }
  if (s == "off") {
    *out = false;
    return true;
  }
  return false;
}

// "a2b", "b2a" or (when allowed) "both".
bool parse_dirs(std::string_view s, bool allow_both, unsigned* out) {
  if (s == "a2b") *out = 1u << kA2B;
  else if (s == "b2a") *out = 1u << kB2A;
  else if (s == "both" && allow_both) *out = (1u << kA2B) | (1u << kB2A);
  else return false;
  return true;
}

std::string parse_setting(std::string_view kv, SettingsPatch* p) {
  size_t eq = kv.find('=');
  if (eq == std::string_view::npos) return "expected key=value, got '" + std::string(kv) + "'";
  std::string_view key = kv.substr(0, eq);
  std::string_view val = kv.substr(eq + 1);
  uint64_t v = 0;
  auto bad = [&] { return "bad value for " + std::string(key) + ": '" + std::string(val) + "'"; };
  if (key == "delay_ms" || key == "jitter_ms") {
    if (!parse_u64(val, 600000, &v)) return bad();
    (key == "delay_ms" ? p->delay_ms : p->jitter_ms) = static_cast<uint32_t>(v);
  } else if (key == "rate_bps") {
    if (!parse_u64(val, uint64_t{1} << 40, &v)) return bad();
    p->rate_bps = v;
  } else if (key == "slice") {
    if (!parse_u64(val, 1u << 20, &v)) return bad();
    p->slice = static_cast<uint32_t>(v);
  } else if (key == "cut_after") {
    if (!parse_u64(val, uint64_t{1} << 50, &v)) return bad();
    p->cut_after = v;
  } else if (key == "queue_bytes") {
    if (!parse_u64(val, uint64_t{1} << 30, &v) || v < 1024) return bad();
    p->queue_bytes = v;
  } else if (key == "stall") {
    bool on = false;
    if (!parse_on_off(val, &on)) return bad();
    p->stall = on;
  } else {
    return "unknown key: " + std::string(key);
  }
  return {};
}

}  // namespace

std::string parse_command(std::string_view line, Command* out) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::vector<std::string_view> t = split(line);
  if (t.empty()) return "empty command";
  std::string_view verb = t[0];
  Command c;
  auto arity = [&](size_t n) -> std::string {
    if (t.size() != n) return std::string(verb) + ": expected " + std::to_string(n - 1) + " argument(s)";
    return {};
  };
  std::string err;
  if (verb == "set") {
    if (t.size() < 3) return "set: usage: set a2b|b2a|both key=value...";
    if (!parse_dirs(t[1], true, &c.dirs)) return "bad direction: " + std::string(t[1]);
    c.verb = Verb::kSet;
    for (size_t i = 2; i < t.size(); ++i) {
      err = parse_setting(t[i], &c.patch);
      if (!err.empty()) return err;
    }
  } else if (verb == "get") {
    if (!(err = arity(2)).empty()) return err;
    if (!parse_dirs(t[1], false, &c.dirs)) return "bad direction: " + std::string(t[1]);
    c.verb = Verb::kGet;
  } else if (verb == "stall") {
    if (!(err = arity(3)).empty()) return err;
    if (!parse_dirs(t[1], true, &c.dirs)) return "bad direction: " + std::string(t[1]);
    if (!parse_on_off(t[2], &c.on)) return "stall: expected on|off";
    c.verb = Verb::kStall;
  } else if (verb == "cut") {
    if (!(err = arity(3)).empty()) return err;
    if (!parse_dirs(t[1], true, &c.dirs)) return "bad direction: " + std::string(t[1]);
    if (!parse_u64(t[2], uint64_t{1} << 50, &c.count)) return "cut: bad byte count";
    c.verb = Verb::kCut;
  } else {
    static constexpr struct {
      std::string_view name;
      Verb verb;
    } kPlain[] = {{"reset", Verb::kReset}, {"down", Verb::kDown},   {"up", Verb::kUp},
                  {"stats", Verb::kStats}, {"clear", Verb::kClear}, {"ping", Verb::kPing}};
    bool found = false;
    for (const auto& p : kPlain) {
      if (verb == p.name) {
        c.verb = p.verb;
        found = true;
      }
    }
    if (!found) return "unknown command: " + std::string(verb);
    if (!(err = arity(1)).empty()) return err;
  }
  *out = c;
  return {};
}

}  // namespace faultproxy
