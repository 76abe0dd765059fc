// The human status page (GET /): what `isthmusctl health`, `isthmusctl lag`
// and `isthmusctl links` print, as one HTML page that refreshes itself, for
// an operator with a browser (or an SSH tunnel to the loopback API). Pure:
// takes the JSON reports of /healthz, /v1/lag and /v1/links, returns the
// page. Every text from them is HTML-escaped (reasons and details carry
// server error messages, stream names are the operator's). Any thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace isthmus::app {

// `refresh_s`: the page reloads itself after that many seconds (0: never).
// `now_ns`: wall clock, for the links' ages.
std::string render_status_page(const nlohmann::json& health, const nlohmann::json& lag,
                               const nlohmann::json& links, int refresh_s, int64_t now_ns);

// &, <, >, " and ' as entities.
std::string html_escape(const std::string& text);

}  // namespace isthmus::app
