// Foreign messages: finding them in a replica and keeping them aside in the
// side stream (side_stream.h), and the replica's description marker.
//
// Every function here BLOCKS on JetStream API requests: call them on the
// NATS worker thread only (Context::async), never on the loop thread.
// Stateless; all state lives with the Follower that calls them.
#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <string>

#include "replication/side_stream.h"
#include "util/status.h"

namespace isthmus::replication {

struct KeepAsideArgs {
  std::string stream;    // the replica
  std::string leader;    // region whose origin headers mark Isthmus's own messages
  std::string storage = "file";
  int replicas = 1;
  uint64_t from_seq = 0;  // scan [from_seq, to_seq]
  uint64_t to_seq = 0;
  uint64_t max_scan = 0;  // stop after examining this many sequences (0: no limit)
  int64_t timeout_ms = 5000;
};

struct KeepAsideResult {
  Status st;
  uint64_t scanned_to = 0;  // every sequence up to here was examined (from_seq - 1 if none)
  uint64_t found = 0;       // foreign messages found in the scanned range
  uint64_t kept = 0;        // of them, held by the side stream (already, or copied now)
  uint64_t copied = 0;      // copied by this call
  uint64_t first_found = 0, last_found = 0;  // their sequences (0 if none)
};

// Examines every stored message of the replica in [from_seq, to_seq] (deleted
// sequences are skipped); each foreign one (foreign_reason() non-empty) is
// copied into the side stream unless the side stream already holds that
// sequence with the same store time. The side stream is created when the
// first foreign message needs it. Idempotent: running it again, or after a
// crash at any point, copies nothing twice and misses nothing.
KeepAsideResult keep_aside(natsConnection* nc, const KeepAsideArgs& a);

struct OwnWritesCheck {
  Status st;
  uint64_t checked = 0;          // stored messages examined
  uint64_t foreign_at = 0;       // the first one Isthmus did not write at its place (0: none)
  std::string why;               // ... and why (foreign_reason())
  uint64_t fillers_deleted = 0;  // fillers found among them and deleted
};

// Late writes: checks that every stored message of the replica in [from,
// to] is Isthmus's write of its own sequence from `leader` (writes of a
// pipeline that restarted, stored after the restart read the replica).
// Read-only but for the fillers among them, whose confirmation was lost:
// those are deleted (as a confirmed filler is). Stops at the first foreign
// message. Blocks: at most to - from + 1 requests (and one per filler).
OwnWritesCheck check_own_writes(natsConnection* nc, const std::string& stream, const std::string& leader,
                                uint64_t from, uint64_t to, int64_t timeout_ms);

// The first sequence that may hold a foreign message when nothing else is
// known: one past the highest message that Isthmus wrote at its place from
// `leader` (below a switchover, copies from the earlier leader count as
// foreign: they may be what the new leader never got), found by walking
// down (to `first` at most) in parts: from `top` down, at most `max_steps` sequences (0: no limit).
// `done` with `start`, or not done yet: go on from `next` (below what was
// read).
struct TailWalk {
  bool done = false;
  uint64_t start = 0;
  uint64_t next = 0;
};
Result<TailWalk> foreign_tail_walk(natsConnection* nc, const std::string& stream, const std::string& leader,
                                   uint64_t first, uint64_t top, uint64_t max_steps, int64_t timeout_ms);

// Rewrites the replica's description marker (and seals the stream when
// `seal`: a sealed stream refuses every write, so nothing new lands while a
// rebuild keeps the foreign messages aside). `config` is the stream's
// current configuration.
Status write_marker(natsConnection* nc, nlohmann::json config, const Marker& m, bool seal, int64_t timeout_ms);

}  // namespace isthmus::replication
