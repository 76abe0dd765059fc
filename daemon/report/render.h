// What people are shown, by isthmusctl and by the daemon's status page
// (app/status_page.h): aligned tables built from the daemon's JSON
// (docs/http-api.md), and the small formatting helpers they use. Pure
// functions of their arguments (no libuv, no NATS), so they are
// unit-tested without a daemon (tests/unit/ctl). Any thread.
// Renderers tolerate missing fields (shown as "-") but throw
// nlohmann::json::exception when a field has the wrong type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace isthmus::report {

// Columns separated by two spaces, padded to the widest cell; numeric
// columns are right-aligned. No trailing spaces. Every line ends in '\n'.
class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string title;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
  // A row with fewer cells than columns is padded with "".
  void add_row(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }
  std::string render() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// 0 B, 1023 B, 1.0 KiB, 12.3 MiB, 1.5 GiB (1024-based).
std::string format_bytes(uint64_t bytes);
// A non-negative age: 0s, 59s, 1m05s, 1h02m, 3d04h. Negative: "-".
std::string format_age(int64_t ns);
// Round-trip time in milliseconds: 0.42ms, 12.3ms, 250ms.
std::string format_rtt_ms(double ms);
// A lag or age in milliseconds: 0, 0.42ms, 12.3ms, 250ms, 1.25s, 59.9s, 1m05s,
// 2h03m. Negative or not a number: "-".
std::string format_lag_ms(double ms);
// A sync progress object of /v1/lag: "caught up", "waiting", or
// "syncing 45.2% 1.2k/s eta 1m05s" (unknown parts left out).
std::string format_progress(const nlohmann::json& sync);

// --interval / --timeout values: "500ms", "1s", "1.5s", "2m", or a bare
// number of seconds ("2"). Between 1ms and 1h.
Result<int64_t> parse_duration_ms(std::string_view text);

// GET /v1/lag: one row per (stream, follower). TIME LAG is the current
// clock-corrected time lag ("?" after it while no clock offset is known),
// P99 the window's 99th percentile, AGE the oldest unreplicated message's age
// on a leader row and the newest applied message's age on a follower row.
// With `problems_only`, only the rows that need a look: a state other than
// replicating, an AGE of a second or more, a sync not caught up, a stale
// report; with a line saying how many of how many rows are shown.
std::string render_lag(const nlohmann::json& lag, bool problems_only = false);
// GET /v1/links: one row per peer; `now_ns` (wall clock) turns since_ns
// into an age.
std::string render_links(const nlohmann::json& links, int64_t now_ns);
// One line on a stream's rebuild from GET /v1/lag: state, done, to go,
// rate, estimated time ("COVENANT_COUNTRIES rebuilding: 20,297 done, 40,211
// to go, 15,640 msg/s, about 3s left"). `finished` is set when the stream is
// replicating again (the rebuild is over), `failed` when it is diverged or
// in error; a stream missing from the report throws std::runtime_error.
std::string render_rebuild(const nlohmann::json& lag, const std::string& stream, bool& finished, bool& failed);
// GET /healthz: status, region, version, uptime, NATS, links, reasons.
std::string render_health(const nlohmann::json& health);

}  // namespace isthmus::report
