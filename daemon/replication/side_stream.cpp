#include "replication/side_stream.h"

#include <charconv>

namespace isthmus::replication {

using Json = nlohmann::json;

namespace {

constexpr std::string_view kMarkerSep = "; isthmus:";

bool parse_u64(std::string_view s, uint64_t& out) {
  return !s.empty() && std::from_chars(s.data(), s.data() + s.size(), out).ec == std::errc() &&
         s.find_first_not_of("0123456789") == std::string_view::npos;
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
    case Marker::Kind::kRebuildRequested: {
      // append(), not "@" + std::string: for that, GCC 12 at -O3 reports a false -Wrestrict inside std::string.
      std::string out = base + std::string(kMarkerSep) + "rebuild=requested";
      if (m.seq > 0) out.append("@").append(std::to_string(m.seq));
      return out;
    }
    case Marker::Kind::kRebuildSyncing: return base + std::string(kMarkerSep) + "rebuild=syncing";
  }
  return base;
}

}  // namespace isthmus::replication
