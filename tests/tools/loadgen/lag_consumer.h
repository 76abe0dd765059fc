// The lag-measuring consumer of the load generator: an ephemeral push
// consumer (deliver policy "new", ack policy none) on a stream, e.g. a
// replica or a mirror in another region. For each delivered message with a
// stamped payload (payload.h) it records arrival time minus stamp
// (CLOCK_REALTIME on both ends: run publisher and consumer on one host).
//
// Prints "ready" on stdout (flushed) once the consumer exists, so a script can
// start publishing then; when `count` stamped messages have arrived, or
// `timeout_s` has passed, prints one JSON line:
//   {"received":N,"unstamped":U,"p50_ms":..,"p90_ms":..,"p99_ms":..,"max_ms":..,
//    "mean_ms":..,"first_ns":..,"last_ns":..}
// (first_ns/last_ns: arrival times of the first and last message) and
// deletes the consumer. Returns 0 if all `count` arrived. With a `series_path`
// it also writes one line per stamped message, in arrival order:
// "<arrival ns> <lag ns> <origin store ns> <replica store ns>" (Unix ns; the
// send stamp is arrival - lag; origin: the Isthmus-Origin-Time header, 0
// without one; replica: the consumed stream's own store time, 0 if unknown),
// read by tests/bench/lag-series.py.
//
// Thread: run() on the caller's thread; deliveries on a cnats subscription
// thread, meeting run() under a mutex.
#pragma once

#include <string>

typedef struct __natsConnection natsConnection;

namespace loadgen {

int measure_lag(natsConnection* nc, const std::string& stream, long count, double timeout_s,
                const std::string& series_path = "");

}  // namespace loadgen
