// RAII ownership of one libuv handle, encoding libuv's lifetime rule: once
// initialised, a handle is closed with uv_close and its memory is freed only
// in the close callback.
//
// The owner object may be destroyed right after close() (or by the
// destructor): the handle's memory outlives it until libuv calls back.
// close() clears handle->data, so any callback that libuv still delivers
// (write, shutdown and connect requests completing with UV_ECANCELED) must
// fetch its owner through req->handle->data and ignore a null owner.
// Thread-safety: loop thread only.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <utility>

namespace faultproxy {

template <typename T>
class UvHandle {
 public:
  UvHandle() : h_(new T{}) {}
  ~UvHandle() { close(); }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;

  T* get() const { return h_; }
  uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(h_); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(h_); }

  // Call after uv_*_init succeeded; from then on the handle must be closed.
  void mark_initialized(void* data) {
    initialized_ = true;
    h_->data = data;
  }
  bool open() const { return h_ != nullptr && initialized_; }

  // Closes gracefully (buffered data still flows out via the kernel).
  void close() {
    if (h_ == nullptr) return;
    if (initialized_) {
      h_->data = nullptr;
      uv_close(handle(), &UvHandle::free_cb);
    } else {
      delete h_;
    }
    h_ = nullptr;
  }

  // TCP only: closes with an RST (SO_LINGER 0). Falls back to setting the
  // option by hand when uv_tcp_close_reset refuses (a shutdown is pending).
  void close_reset() {
    if (h_ == nullptr) return;
    if (!initialized_) {
      close();
      return;
    }
    h_->data = nullptr;
    if (uv_tcp_close_reset(h_, &UvHandle::free_cb) != 0) {
      uv_os_fd_t fd;
      if (uv_fileno(handle(), &fd) == 0) {
        struct linger l = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
      }
      uv_close(handle(), &UvHandle::free_cb);
    }
    h_ = nullptr;
  }

 private:
  static void free_cb(uv_handle_t* h) { delete reinterpret_cast<T*>(h); }

  T* h_;
  bool initialized_ = false;
};

// Owner of a heap request: returns the owner stored in the handle's data, or
// nullptr when the handle is being closed and its owner may be gone.
template <typename Owner, typename Req>
Owner* owner_of(Req* req) {
  return static_cast<Owner*>(req->handle->data);
}

}  // namespace faultproxy
