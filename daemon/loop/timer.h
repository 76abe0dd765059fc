// Timer: RAII wrapper for uv_timer_t encoding libuv's close rule: the handle
// memory is released only in its close callback, never while libuv may still
// touch it. Loop thread only. Destroying the Timer stops it; the callback
// never runs after destruction.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>

namespace isthmus::loop {

class Timer {
 public:
  explicit Timer(uv_loop_t* loop);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Runs fn after `ms`, then every `repeat_ms` if non-zero. Restarts if running.
  void start(uint64_t ms, uint64_t repeat_ms, std::function<void()> fn);
  void stop();
  bool active() const;

 private:
  static void on_timer(uv_timer_t* t);
  uv_timer_t* h_;
  std::function<void()> fn_;
};

// Current wall-clock time in Unix nanoseconds (CLOCK_REALTIME) and a
// monotonic clock in nanoseconds.
int64_t wall_ns();
int64_t mono_ns();

}  // namespace isthmus::loop
