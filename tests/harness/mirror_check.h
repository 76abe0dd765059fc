// The replication contract, as checks: which headers a replica message must
// carry for a given leader message, and a sequence-by-sequence comparison of
// a leader stream with its replica.
//
// Header rule (docs/wire-format.md): every leader header reaches the
// replica unchanged, except the JetStream publish-time headers, which
// travel renamed with the prefix "Isthmus-Orig-"; the daemon adds
// Isthmus-Origin-Region, Isthmus-Origin-Seq (decimal leader sequence),
// Isthmus-Origin-Time (leader store time, decimal Unix ns) and
// Isthmus-Epoch (decimal). Header order is not compared (cnats does not
// keep it); the values of a repeated header keep their order.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "jetstream.h"

namespace harness {

// Nats-Msg-Id, Nats-Expected-Stream, Nats-Expected-Last-Msg-Id,
// Nats-Expected-Last-Sequence, Nats-Expected-Last-Subject-Sequence,
// Nats-Rollup.
const std::vector<std::string>& publish_time_headers();
inline const char* kOrigPrefix = "Isthmus-Orig-";

Headers expected_replica_headers(const StoredMsg& leader, const std::string& leader_region,
                                 const std::string& epoch = "0");

// "" when the replica message matches the leader message under the rule,
// else a description of every difference.
std::string compare_replica_msg(const StoredMsg& leader, const StoredMsg& replica,
                                const std::string& leader_region, const std::string& epoch = "0");

struct MirrorDiff {
  size_t compared = 0;               // sequences present on both sides and compared
  size_t mismatches = 0;             // total problems (problems holds the first few)
  std::vector<std::string> problems;
  bool ok() const { return mismatches == 0; }
  std::string summary() const;
};

// Compares every sequence <= up_to (both sides must hold the same set of
// sequences in that range, and each pair must match).
MirrorDiff compare_streams(const std::vector<StoredMsg>& leader, const std::vector<StoredMsg>& replica,
                           const std::string& leader_region, const std::string& epoch = "0",
                           uint64_t up_to = std::numeric_limits<uint64_t>::max());

// "" when the replica's state matches the leader's: the same first and last
// sequence, message count and set of deleted sequences (both read with
// deleted_details), else every difference. With compare_streams this is
// "sequence for sequence": what is held and what is not.
std::string compare_stream_states(const StreamInfo& leader, const StreamInfo& replica);

}  // namespace harness
