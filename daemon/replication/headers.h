// The header rule: how a leader message's headers appear in a replica.
// Pure code. docs/architecture.md ("Headers") is the contract.
//
//  - Every leader header reaches the replica unchanged, except the headers
//    JetStream acts on at publish time (Nats-Msg-Id, Nats-Expected-*,
//    Nats-Rollup), which travel renamed to "Isthmus-Orig-<name>" so they
//    cannot act a second time in the replica.
//  - Isthmus adds the origin headers below. Leader headers that already use
//    these names are replaced (a message is described by one origin only).
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace isthmus::replication {

inline constexpr std::string_view kHdrOriginRegion = "Isthmus-Origin-Region";
inline constexpr std::string_view kHdrOriginSeq = "Isthmus-Origin-Seq";
inline constexpr std::string_view kHdrOriginTime = "Isthmus-Origin-Time";  // Unix ns
inline constexpr std::string_view kHdrEpoch = "Isthmus-Epoch";
inline constexpr std::string_view kHdrFiller = "Isthmus-Filler";
inline constexpr std::string_view kEscapePrefix = "Isthmus-Orig-";

using Headers = std::vector<std::pair<std::string, std::string>>;

// True for headers JetStream acts on when a message is published.
bool is_publish_time_header(std::string_view key);
// True for the origin headers Isthmus itself writes.
bool is_origin_header(std::string_view key);

struct Origin {
  std::string region;
  uint64_t seq = 0;
  int64_t time_ns = 0;
  uint64_t epoch = 0;
};

// Headers to publish into the replica for a leader message.
Headers replica_headers(const Headers& leader, const Origin& origin);

// The same headers, in the same order, handed to add(key, value) as
// NUL-terminated strings that live until add returns (no Headers built: the
// follower calls this once per replicated message). Stops at, and returns,
// the first false from add.
template <typename Add>
bool for_each_replica_header(const Headers& leader, const Origin& origin, Add&& add);

// A copy of another region's message at `seq` (stored while this region
// followed the stream): its origin headers name a region, `seq` and a store
// time, and it is not a filler. Fills `out`.
bool copied_origin(const Headers& headers, uint64_t seq, Origin& out);

// Reads the origin headers back from a replica message: false unless
// Isthmus-Origin-Seq is present and wholly a decimal number; a malformed time
// or epoch leaves that field unchanged.
bool parse_origin(const Headers& replica, Origin& out);

template <typename Add>
bool for_each_replica_header(const Headers& leader, const Origin& origin, Add&& add) {
  for (const auto& [k, v] : leader) {
    if (is_origin_header(k)) continue;
    if (is_publish_time_header(k)) {
      std::string escaped = std::string(kEscapePrefix) + k;
      if (!add(escaped.c_str(), v.c_str())) return false;
    } else if (!add(k.c_str(), v.c_str())) {
      return false;
    }
  }
  char num[24];
  auto put = [&num](auto x) {
    auto r = std::to_chars(num, num + sizeof(num) - 1, x);
    *r.ptr = '\0';
    return static_cast<const char*>(num);
  };
  // (kHdr* are string literals: their data() is NUL-terminated.)
  return add(kHdrOriginRegion.data(), origin.region.c_str()) && add(kHdrOriginSeq.data(), put(origin.seq)) &&
         add(kHdrOriginTime.data(), put(origin.time_ns)) &&
         add(kHdrEpoch.data(), put(origin.epoch));
}

}  // namespace isthmus::replication
