// Divergence bookkeeping that is pure code (no NATS, no libuv): the side
// stream that keeps foreign messages aside, how a replica message is told
// apart from a foreign one, and the markers Isthmus keeps in a replica's
// description so that divergence and a rebuild survive a daemon restart.
// docs/architecture.md ("Divergence") is the contract.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "replication/headers.h"

namespace isthmus::replication {

// Headers of a message kept aside (besides the message's own headers, whose
// publish-time headers travel renamed with "Isthmus-Orig-" as in replicas).
inline constexpr std::string_view kHdrForeignStream = "Isthmus-Foreign-Stream";    // replica stream
inline constexpr std::string_view kHdrForeignSubject = "Isthmus-Foreign-Subject";  // original subject
inline constexpr std::string_view kHdrForeignSeq = "Isthmus-Foreign-Seq";          // sequence in the replica
inline constexpr std::string_view kHdrForeignTime = "Isthmus-Foreign-Time";        // store time, Unix ns
inline constexpr std::string_view kHdrForeignStored = "Isthmus-Foreign-Stored";    // store time, RFC 3339
inline constexpr std::string_view kHdrForeignReason = "Isthmus-Foreign-Reason";    // why it is foreign

// "ISTHMUS_FOREIGN_<stream>".
std::string side_stream_name(const std::string& stream);
// "$ISTHMUS.FOREIGN.<stream>.<seq>": one subject per replica sequence, so
// whether a sequence is already kept aside is one last-by-subject lookup.
std::string side_subject(const std::string& stream, uint64_t seq);
// "$ISTHMUS.FOREIGN.<stream>.>": the side stream's only subject. Subjects
// starting with '$' are reserved for systems, so no application stream
// captures them.
std::string side_stream_subjects(const std::string& stream);
// Limits retention, no limits, discard old, the replica's storage.
nlohmann::json side_stream_config(const std::string& stream, const std::string& storage, int replicas);

// Why a replica message at `seq` is foreign: "" when Isthmus wrote it there
// (origin headers naming `leader` and `seq`), else a short reason.
std::string foreign_reason(const Headers& headers, uint64_t seq, const std::string& leader);

// Headers for the side-stream copy of a foreign message.
Headers side_headers(const Headers& original, const std::string& stream, const std::string& subject,
                     uint64_t seq, int64_t time_ns, const std::string& stored, const std::string& reason);

// The marker Isthmus keeps at the end of a replica's description
// ("Isthmus replica of X; isthmus:diverged=501", "...; isthmus:rebuild=requested@501",
// "...; isthmus:rebuild=syncing"). A stream update that only
// changes the description is accepted by JetStream, and the marker goes away
// with the stream when a rebuild deletes it.
struct Marker {
  enum class Kind { kNone, kDiverged, kRebuildRequested, kRebuildSyncing };
  Kind kind = Kind::kNone;
  // kDiverged, kRebuildRequested: first sequence that may hold foreign
  // messages (0: unknown, found by foreign_tail_walk()).
  uint64_t seq = 0;
};
Marker parse_marker(std::string_view description);
// `description` without any marker, followed by `m` (none: just the base).
std::string with_marker(std::string_view description, const Marker& m);

}  // namespace isthmus::replication
