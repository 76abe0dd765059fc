// Catch-up watcher of the load generator: polls a stream's state
// ($JS.API.STREAM.INFO, every `interval_ms`) until its last sequence reaches
// `target`, and prints one JSON line:
//   {"ok":true|false,"first_ns":..,"first_seq":..,"done_ns":..,"last_seq":..,"polls":..}
// first_ns: CLOCK_REALTIME when a poll first saw last_seq > 0 (first_seq: the
// last_seq it saw then); done_ns: when a poll first saw last_seq >= target.
// A missing stream counts as empty (a replica or mirror may not exist yet).
// Returns 0 if the target was reached within `timeout_s`.
//
// Thread: the caller's.
#pragma once

#include <cstdint>
#include <string>

typedef struct __natsConnection natsConnection;

namespace loadgen {

int watch_catchup(natsConnection* nc, const std::string& stream, uint64_t target, double timeout_s,
                  long interval_ms);

}  // namespace loadgen
