// Deferred deletion. An object that closes itself from inside one of its own
// callbacks hands itself to the Reaper, which deletes it from a uv_check
// callback, once the current call stack has unwound. The handles it owned
// free themselves in their close callbacks (see uv_handle.h).
// Thread-safety: loop thread only.
#pragma once

#include <uv.h>

#include <memory>
#include <vector>

#include "uv_handle.h"

namespace faultproxy {

class Reapable {
 public:
  virtual ~Reapable() = default;
};

class Reaper {
 public:
  explicit Reaper(uv_loop_t* loop) {
    uv_check_init(loop, check_.get());
    check_.mark_initialized(this);
    uv_check_start(check_.get(), [](uv_check_t* h) {
      static_cast<Reaper*>(h->data)->dead_.clear();
    });
    uv_unref(check_.handle());  // never keeps the loop alive on its own
  }

  void bury(std::unique_ptr<Reapable> dead) { dead_.push_back(std::move(dead)); }
  // Deletes everything now and closes the check handle (loop shutdown).
  void close() {
    dead_.clear();
    check_.close();
  }

 private:
  UvHandle<uv_check_t> check_;
  std::vector<std::unique_ptr<Reapable>> dead_;
};

}  // namespace faultproxy
