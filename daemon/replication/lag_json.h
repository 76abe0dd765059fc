// JSON pieces of GET /v1/lag shared by the leader and follower sides
// (docs/http-api.md describes every field). Pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "replication/latency_histogram.h"
#include "replication/sync_progress.h"

namespace isthmus::replication {

double ns_to_ms(int64_t ns);
// {"current_ms", "p50_ms", "p95_ms", "p99_ms", "window_samples", "window_s",
//  "clock_offset_known", "clock_offset_ms", "clock_offset_error_ms"};
// unknown values (-1) are null.
nlohmann::json lag_figures_json(int64_t current_ns, const LagQuantiles& q, bool offset_known, int64_t offset_ns,
                                int64_t offset_error_ns);
// {"le_s": [bounds...], "cumulative": [counts per bound..., +Inf], "sum_s", "count"}
nlohmann::json histogram_json(const CumulativeBuckets& b);
// {"kind" (initial|rebuild), "state", "done", "to_go", "rate_per_s",
//  "eta_s" (null: unknown), "elapsed_s" (null: not started, or unknown: elapsed_ns < 0)}
nlohmann::json sync_json(const SyncSnapshot& s);

}  // namespace isthmus::replication
