#include "replication/lag_json.h"

#include <cmath>

namespace isthmus::replication {

using Json = nlohmann::json;

double ns_to_ms(int64_t ns) {
  // Microsecond resolution is plenty and keeps the JSON short.
  return std::round(static_cast<double>(ns) / 1e3) / 1e3;
}

namespace {
Json ms_or_null(int64_t ns) { return ns < 0 ? Json(nullptr) : Json(ns_to_ms(ns)); }
}  // namespace

Json lag_figures_json(int64_t current_ns, const LagQuantiles& q, bool offset_known, int64_t offset_ns,
                      int64_t offset_error_ns) {
  Json j;
  j["current_ms"] = ms_or_null(current_ns);
  j["p50_ms"] = ms_or_null(q.p50_ns);
  j["p95_ms"] = ms_or_null(q.p95_ns);
  j["p99_ms"] = ms_or_null(q.p99_ns);
  j["window_samples"] = q.samples;
  j["window_s"] = WindowedHistogram::kWindowNs / 1'000'000'000;
  j["clock_offset_known"] = offset_known;
  j["clock_offset_ms"] = offset_known ? Json(ns_to_ms(offset_ns)) : Json(nullptr);
  j["clock_offset_error_ms"] = offset_known ? ms_or_null(offset_error_ns) : Json(nullptr);
  return j;
}

Json histogram_json(const CumulativeBuckets& b) {
  Json j;
  j["le_s"] = CumulativeBuckets::bounds();
  j["cumulative"] = b.cumulative();
  j["sum_s"] = b.sum_seconds();
  j["count"] = b.count();
  return j;
}

Json sync_json(const SyncSnapshot& s) {
  Json j;
  j["kind"] = s.kind;
  j["state"] = s.state();
  j["done"] = s.done;
  j["to_go"] = s.to_go;
  j["rate_per_s"] = std::round(s.rate_per_s * 10) / 10;
  j["eta_s"] = s.eta_s < 0 ? Json(nullptr) : Json(std::round(s.eta_s * 10) / 10);
  j["elapsed_s"] = s.started && s.elapsed_ns >= 0 ? Json(std::round(static_cast<double>(s.elapsed_ns) / 1e8) / 10) : Json(nullptr);
  return j;
}

}  // namespace isthmus::replication
