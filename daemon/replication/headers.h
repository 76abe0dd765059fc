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

// Reads the origin headers back from a replica message: false unless
// Isthmus-Origin-Seq is present and wholly a decimal number; a malformed time
// or epoch leaves that field unchanged.
bool parse_origin(const Headers& replica, Origin& out);

}  // namespace isthmus::replication
