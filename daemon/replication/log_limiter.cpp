#include "replication/log_limiter.h"

#include <spdlog/spdlog.h>

namespace isthmus::replication {

LogLimiter::LogLimiter(size_t burst, int64_t window_ns) : burst_(burst), window_ns_(window_ns) {}

bool LogLimiter::allow(std::string_view kind, int64_t now_mono_ns) {
  auto it = kinds_.find(kind);
  if (it == kinds_.end()) it = kinds_.emplace(std::string(kind), Window{now_mono_ns, 0, 0}).first;
  Window& w = it->second;
  if (now_mono_ns - w.start_ns >= window_ns_) {
    report(it->first, w);
    w = Window{now_mono_ns, 0, 0};
  }
  if (w.logged < burst_) {
    ++w.logged;
    return true;
  }
  ++w.held;
  return false;
}

void LogLimiter::flush(int64_t now_mono_ns) {
  for (auto it = kinds_.begin(); it != kinds_.end();) {
    if (now_mono_ns - it->second.start_ns < window_ns_) {
      ++it;
      continue;
    }
    report(it->first, it->second);
    it = kinds_.erase(it);  // a quiet kind starts afresh
  }
}

void LogLimiter::report(const std::string& kind, Window& w) {
  if (w.held == 0) return;
  const std::string line = std::to_string(w.held) + " more warning(s) \"" + kind + "\" in " +
                           std::to_string(window_ns_ / 1'000'000'000) + " s not logged (after " +
                           std::to_string(w.logged) + "; /healthz and /v1/lag name every stream)";
  w.held = 0;
  if (sink_) {
    sink_(line);
  } else {
    spdlog::warn("{}", line);
  }
}

}  // namespace isthmus::replication
