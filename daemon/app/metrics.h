// Prometheus text exposition (format 0.0.4) of what /v1/lag, /v1/links and
// /healthz report: one source of truth, rendered a second way. Pure: takes
// the JSON reports, returns the text. Metric names are listed in
// docs/http-api.md.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace isthmus::app {

std::string render_metrics(const nlohmann::json& lag, const nlohmann::json& links, const nlohmann::json& health);

}  // namespace isthmus::app
