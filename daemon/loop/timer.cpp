#include "loop/timer.h"

#include <time.h>

namespace isthmus::loop {

Timer::Timer(uv_loop_t* loop) : h_(new uv_timer_t) {
  uv_timer_init(loop, h_);
  h_->data = this;
}

Timer::~Timer() {
  uv_timer_stop(h_);
  h_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(h_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

void Timer::start(uint64_t ms, uint64_t repeat_ms, std::function<void()> fn) {
  fn_ = std::move(fn);
  uv_timer_start(h_, &Timer::on_timer, ms, repeat_ms);
}

void Timer::stop() { uv_timer_stop(h_); }

bool Timer::active() const {
  return uv_is_active(reinterpret_cast<const uv_handle_t*>(h_)) != 0;
}

void Timer::on_timer(uv_timer_t* t) {
  auto* self = static_cast<Timer*>(t->data);
  if (self == nullptr) return;
  // Copy: the callback may restart or destroy this timer.
  auto fn = self->fn_;
  if (fn) fn();
}

int64_t wall_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

}  // namespace isthmus::loop
