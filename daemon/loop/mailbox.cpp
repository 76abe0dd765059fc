#include "loop/mailbox.h"

namespace isthmus::loop {

Mailbox::Mailbox(uv_loop_t* loop) {
  async_ = new uv_async_t;
  uv_async_init(loop, async_, &Mailbox::on_async);
  async_->data = this;
}

Mailbox::~Mailbox() {
  if (async_ != nullptr) close();
}

void Mailbox::post(Fn fn) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (closed_) return;
    q_.push_back(std::move(fn));
  }
  // uv_async_send is async-signal and thread safe; coalesces wakeups.
  uv_async_send(async_);
}

size_t Mailbox::depth() const {
  std::lock_guard<std::mutex> lk(mu_);
  return q_.size();
}

void Mailbox::close() {
  std::deque<Fn> dropped;
  {
    std::lock_guard<std::mutex> lk(mu_);
    closed_ = true;
    dropped.swap(q_);
  }
  if (async_ != nullptr) {
    async_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(async_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
    async_ = nullptr;
  }
}

void Mailbox::on_async(uv_async_t* h) {
  auto* self = static_cast<Mailbox*>(h->data);
  if (self != nullptr) self->drain();
}

void Mailbox::drain() {
  // Take a bounded batch at a time so the loop stays responsive to sockets
  // and timers while a burst is being delivered.
  for (int rounds = 0; rounds < 64; ++rounds) {
    std::deque<Fn> batch;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (closed_ || q_.empty()) return;
      size_t n = q_.size() < 4096 ? q_.size() : 4096;
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(q_.front()));
        q_.pop_front();
      }
    }
    for (auto& fn : batch) {
      fn();
      if (closed_) return;
    }
  }
  // More left: come back on the next loop iteration.
  std::lock_guard<std::mutex> lk(mu_);
  if (!closed_ && !q_.empty()) uv_async_send(async_);
}

}  // namespace isthmus::loop
