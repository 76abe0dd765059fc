#include "replication/headers.h"

#include <charconv>
#include <strings.h>

namespace isthmus::replication {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && strncasecmp(s.data(), prefix.data(), prefix.size()) == 0;
}

}  // namespace

bool is_publish_time_header(std::string_view key) {
  return iequals(key, "Nats-Msg-Id") || istarts_with(key, "Nats-Expected-") || iequals(key, "Nats-Rollup");
}

bool is_origin_header(std::string_view key) {
  return iequals(key, kHdrOriginRegion) || iequals(key, kHdrOriginSeq) || iequals(key, kHdrOriginTime) ||
         iequals(key, kHdrEpoch) || iequals(key, kHdrFiller);
}

Headers replica_headers(const Headers& leader, const Origin& origin) {
  Headers out;
  out.reserve(leader.size() + 4);
  for_each_replica_header(leader, origin, [&out](const char* k, const char* v) {
    out.emplace_back(k, v);
    return true;
  });
  return out;
}

namespace {
// The whole value must be a decimal number ("12abc" and "" are not).
template <typename T>
bool parse_whole(const std::string& v, T& out) {
  T x{};
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) return false;
  out = x;
  return true;
}
}  // namespace

bool copied_origin(const Headers& headers, uint64_t seq, Origin& out) {
  for (const auto& [k, v] : headers) {
    if (iequals(k, kHdrFiller)) return false;
  }
  Origin o;
  if (!parse_origin(headers, o) || o.seq != seq || o.time_ns <= 0 || o.region.empty()) return false;
  out = std::move(o);
  return true;
}

bool parse_origin(const Headers& replica, Origin& out) {
  bool have_seq = false;
  for (const auto& [k, v] : replica) {
    if (iequals(k, kHdrOriginRegion)) {
      out.region = v;
    } else if (iequals(k, kHdrOriginSeq)) {
      have_seq = parse_whole(v, out.seq);
    } else if (iequals(k, kHdrOriginTime)) {
      parse_whole(v, out.time_ns);
    } else if (iequals(k, kHdrEpoch)) {
      parse_whole(v, out.epoch);
    }
  }
  return have_seq;
}

}  // namespace isthmus::replication
