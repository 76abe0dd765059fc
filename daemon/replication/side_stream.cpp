#include "replication/side_stream.h"

#include <charconv>
#include <ctime>

namespace isthmus::replication {

using Json = nlohmann::json;

namespace {

constexpr std::string_view kMarkerSep = "; isthmus:";

bool parse_u64(std::string_view s, uint64_t& out) {
  return !s.empty() && std::from_chars(s.data(), s.data() + s.size(), out).ec == std::errc() &&
         s.find_first_not_of("0123456789") == std::string_view::npos;
}

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

std::string side_stream_name(const std::string& stream) { return "ISTHMUS_FOREIGN_" + stream; }

std::string side_subject(const std::string& stream, uint64_t seq) {
  return "$ISTHMUS.FOREIGN." + stream + "." + std::to_string(seq);
}

std::string side_stream_subjects(const std::string& stream) { return "$ISTHMUS.FOREIGN." + stream + ".>"; }

Json side_stream_config(const std::string& stream, const std::string& storage, int replicas) {
  return Json{{"name", side_stream_name(stream)},
              {"description", "Isthmus: foreign messages found in the replica of " + stream},
              {"subjects", Json::array({side_stream_subjects(stream)})},
              {"retention", "limits"},
              {"discard", "old"},
              {"storage", storage},
              {"num_replicas", replicas},
              {"max_msgs", -1},
              {"max_bytes", -1},
              {"max_age", 0},
              {"max_msgs_per_subject", -1},
              {"max_msg_size", -1},
              {"max_consumers", -1}};
}

std::string foreign_reason(const Headers& headers, uint64_t seq, const std::string& leader) {
  Origin o;
  if (!parse_origin(headers, o)) return "no Isthmus origin headers";
  if (o.region != leader) return "origin region " + o.region + ", not " + leader;
  if (o.seq != seq) return "origin sequence " + std::to_string(o.seq) + " stored at " + std::to_string(seq);
  return "";
}

Headers side_headers(const Headers& original, const std::string& stream, const std::string& subject,
                     uint64_t seq, int64_t time_ns, const std::string& stored, const std::string& reason) {
  Headers out;
  for (const auto& [k, v] : original) {
    if (is_publish_time_header(k)) {
      out.emplace_back(std::string(kEscapePrefix) + k, v);
    } else {
      out.emplace_back(k, v);
    }
  }
  out.emplace_back(std::string(kHdrForeignStream), stream);
  out.emplace_back(std::string(kHdrForeignSubject), subject);
  out.emplace_back(std::string(kHdrForeignSeq), std::to_string(seq));
  out.emplace_back(std::string(kHdrForeignTime), std::to_string(time_ns));
  if (!stored.empty()) out.emplace_back(std::string(kHdrForeignStored), stored);
  if (!reason.empty()) out.emplace_back(std::string(kHdrForeignReason), reason);
  return out;
}

std::optional<int64_t> parse_rfc3339_ns(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  int y, mo, d, h, mi, s;
  if (!digits(t, 0, 4, y) || t.size() < 20 || t[4] != '-' || !digits(t, 5, 2, mo) || t[7] != '-' ||
      !digits(t, 8, 2, d) || (t[10] != 'T' && t[10] != 't') || !digits(t, 11, 2, h) || t[13] != ':' ||
      !digits(t, 14, 2, mi) || t[16] != ':' || !digits(t, 17, 2, s)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return std::nullopt;
  size_t pos = 19;
  int64_t frac = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    int n = 0;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      if (n < 9) {
        frac = frac * 10 + (t[pos] - '0');
        ++n;
      }
      ++pos;
    }
    if (n == 0) return std::nullopt;
    for (; n < 9; ++n) frac *= 10;
  }
  int64_t offset_s = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    int oh, om;
    if (!digits(t, pos + 1, 2, oh) || pos + 3 >= t.size() || t[pos + 3] != ':' || !digits(t, pos + 4, 2, om)) {
      return std::nullopt;
    }
    offset_s = (oh * 3600 + om * 60) * (t[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != t.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  int64_t secs = static_cast<int64_t>(timegm(&tm)) - offset_s;
  return secs * 1'000'000'000 + frac;
}

Marker parse_marker(std::string_view description) {
  Marker m;
  size_t p = description.rfind(kMarkerSep);
  if (p == std::string_view::npos) return m;
  std::string_view v = description.substr(p + kMarkerSep.size());
  if (v == "rebuild=requested") {
    m.kind = Marker::Kind::kRebuildRequested;
  } else if (v.rfind("rebuild=requested@", 0) == 0 && parse_u64(v.substr(18), m.seq)) {
    m.kind = Marker::Kind::kRebuildRequested;
  } else if (v == "rebuild=syncing") {
    m.kind = Marker::Kind::kRebuildSyncing;
  } else if (v.rfind("diverged=", 0) == 0 && parse_u64(v.substr(9), m.seq)) {
    m.kind = Marker::Kind::kDiverged;
  }
  return m;
}

std::string with_marker(std::string_view description, const Marker& m) {
  size_t p = description.rfind(kMarkerSep);
  std::string base(p == std::string_view::npos ? description : description.substr(0, p));
  switch (m.kind) {
    case Marker::Kind::kNone: return base;
    case Marker::Kind::kDiverged: return base + std::string(kMarkerSep) + "diverged=" + std::to_string(m.seq);
    case Marker::Kind::kRebuildRequested:
      return base + std::string(kMarkerSep) + "rebuild=requested" + (m.seq > 0 ? "@" + std::to_string(m.seq) : "");
    case Marker::Kind::kRebuildSyncing: return base + std::string(kMarkerSep) + "rebuild=syncing";
  }
  return base;
}

}  // namespace isthmus::replication
