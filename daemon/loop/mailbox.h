// Mailbox: the one queue by which other threads (cnats callbacks, the NATS
// worker) hand work to the libuv loop thread.
//
// Threads: post() is safe from any thread. The posted closures run on the
// loop thread, in FIFO order, in batches (one uv_async wakeup may run many).
// Lifetime: created and closed on the loop thread. After close() no closure
// runs; posts that arrive later are dropped (and destroyed on the poster's
// thread or at destruction).
#pragma once

#include <uv.h>

#include <deque>
#include <functional>
#include <mutex>

namespace isthmus::loop {

class Mailbox {
 public:
  using Fn = std::function<void()>;

  explicit Mailbox(uv_loop_t* loop);
  ~Mailbox();
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  void post(Fn fn);
  // Loop thread. Stops delivery; the handle is closed asynchronously and the
  // memory it needs is released in its close callback.
  void close();
  size_t depth() const;

 private:
  static void on_async(uv_async_t* h);
  void drain();

  uv_async_t* async_ = nullptr;  // freed in close callback
  mutable std::mutex mu_;
  std::deque<Fn> q_;
  bool closed_ = false;
};

}  // namespace isthmus::loop
