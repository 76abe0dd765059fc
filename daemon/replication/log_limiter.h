// A rate limit for warnings that many streams log at once for one cause:
// a stalled nats-server times out every stream's state read, and 250
// streams wrote 250 lines saying the same. Per kind (a fixed text naming
// the cause, e.g. "cannot read local stream"), the first few lines of a
// window are logged; the rest are counted, and one line says how many
// once the window is over (flush(), called about once a second). The
// streams' own state (/healthz, /v1/lag) still names every one.
//
// Loop thread only. Owned by the Replicator (Context::warnings).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace isthmus::replication {

class LogLimiter {
 public:
  explicit LogLimiter(size_t burst = 5, int64_t window_ns = 10'000'000'000);

  // True when a line of `kind` may be logged now; false counts it.
  bool allow(std::string_view kind, int64_t now_mono_ns);
  // For each kind whose window is over with lines held back: one warning
  // saying how many (through `sink`, spdlog's warn when empty).
  void flush(int64_t now_mono_ns);

  using Sink = std::function<void(const std::string& line)>;
  void set_sink(Sink sink) { sink_ = std::move(sink); }

 private:
  struct Window {
    int64_t start_ns = 0;
    size_t logged = 0;
    size_t held = 0;
  };
  void report(const std::string& kind, Window& w);

  size_t burst_;
  int64_t window_ns_;
  std::map<std::string, Window, std::less<>> kinds_;
  Sink sink_;
};

}  // namespace isthmus::replication
