// Byte layers: the link is a stack of transformations between frames and the
// socket: [S2] over TLS over TCP (docs/wire-format.md, "Layers"). Each layer
// is pure bytes in, bytes out: no libuv, no sockets. Loop thread only (owned
// by one link).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "link/close_reason.h"
#include "util/status.h"

namespace isthmus::link {

class Layer {
 public:
  virtual ~Layer() = default;
  // Bytes from above, heading to the network; `flush` ends a batch (a
  // compressing layer emits its chunk). Output goes to `to_net`.
  virtual Status write(std::span<const uint8_t> in, bool flush, std::vector<uint8_t>& to_net) = 0;
  // Bytes from the network, heading up into `to_app`. A layer may also have
  // bytes to send in answer (a TLS handshake, an alert), appended to
  // `to_net`, also when it returns an error.
  virtual Status read(std::span<const uint8_t> in, std::vector<uint8_t>& to_app,
                      std::vector<uint8_t>& to_net) = 0;
  // After read()/write() failed: the link close reason for that failure.
  virtual CloseReason failure_reason() const { return CloseReason::kProtocolError; }
};

// An ordered stack, top (next to frames) first. With no layers it passes bytes
// through unchanged.
class LayerStack {
 public:
  void push_bottom(std::unique_ptr<Layer> l) { layers_.push_back(std::move(l)); }
  // Adds a layer next to the frames (S2, once the HELLO exchange is done).
  // push_back + rotate rather than insert(begin()): the same result, but
  // GCC 12 at -O3 reports a false -Wnull-dereference (in <tuple>) inside
  // vector::insert's move of the unique_ptrs.
  void push_top(std::unique_ptr<Layer> l) {
    layers_.push_back(std::move(l));
    std::rotate(layers_.begin(), layers_.end() - 1, layers_.end());
  }
  bool empty() const { return layers_.empty(); }
  size_t size() const { return layers_.size(); }
  Layer* at(size_t i) { return layers_[i].get(); }
  // Frames -> socket bytes.
  Status write(std::span<const uint8_t> in, bool flush, std::vector<uint8_t>& to_net);
  // Socket bytes -> frame bytes (plus any bytes the layers must send back,
  // also when an error is returned).
  Status read(std::span<const uint8_t> in, std::vector<uint8_t>& to_app, std::vector<uint8_t>& to_net);
  // Bytes that already passed every layer but the top one (after push_top)
  // -> frame bytes, through the top layer only.
  Status read_top(std::span<const uint8_t> in, std::vector<uint8_t>& to_app);
  // The close reason of the layer whose read()/write() failed last.
  CloseReason failure_reason() const { return failure_; }

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  CloseReason failure_ = CloseReason::kProtocolError;
};

}  // namespace isthmus::link
