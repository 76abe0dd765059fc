// Byte layers: the link is a stack of transformations between frames and the
// socket (today: none, i.e. plain TCP; the secure-links work adds S2 and TLS
// as layers without touching the frame code). Each layer is pure bytes in,
// bytes out: no libuv, no sockets. Loop thread only (owned by one link).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "util/status.h"

namespace isthmus::link {

class Layer {
 public:
  virtual ~Layer() = default;
  // Bytes from above, heading to the network; `flush` ends a batch (a
  // compressing layer emits its chunk). Output goes to `to_net`.
  virtual Status write(std::span<const uint8_t> in, bool flush, std::vector<uint8_t>& to_net) = 0;
  // Bytes from the network, heading up into `to_app`. A layer may also have
  // bytes to send in answer (a TLS handshake), appended to `to_net`.
  virtual Status read(std::span<const uint8_t> in, std::vector<uint8_t>& to_app,
                      std::vector<uint8_t>& to_net) = 0;
};

// An ordered stack, top (next to frames) first. With no layers it passes bytes
// through unchanged.
class LayerStack {
 public:
  void push_bottom(std::unique_ptr<Layer> l) { layers_.push_back(std::move(l)); }
  bool empty() const { return layers_.empty(); }
  // Frames -> socket bytes.
  Status write(std::span<const uint8_t> in, bool flush, std::vector<uint8_t>& to_net);
  // Socket bytes -> frame bytes (plus any bytes the layers must send back).
  Status read(std::span<const uint8_t> in, std::vector<uint8_t>& to_app, std::vector<uint8_t>& to_net);

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
};

}  // namespace isthmus::link
