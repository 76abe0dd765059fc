#include "link/layer.h"

namespace isthmus::link {

Status LayerStack::write(std::span<const uint8_t> in, bool flush, std::vector<uint8_t>& to_net) {
  if (layers_.empty()) {
    to_net.insert(to_net.end(), in.begin(), in.end());
    return Status::ok();
  }
  // The first layer reads the caller's bytes in place; each layer's output
  // is the next one's input.
  std::span<const uint8_t> cur = in;
  std::vector<uint8_t> held, next;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const bool last = i + 1 == layers_.size();
    next.clear();
    Status st = layers_[i]->write(cur, flush, last ? to_net : next);
    if (!st) {
      failure_ = layers_[i]->failure_reason();
      return st;
    }
    if (!last) {
      held.swap(next);
      cur = held;
    }
  }
  return Status::ok();
}

Status LayerStack::read(std::span<const uint8_t> in, std::vector<uint8_t>& to_app,
                        std::vector<uint8_t>& to_net) {
  if (layers_.empty()) {
    to_app.insert(to_app.end(), in.begin(), in.end());
    return Status::ok();
  }
  // Bottom layer first. Bytes a layer wants to send back must pass through
  // the layers below it on the way down.
  std::span<const uint8_t> cur = in;  // the bottom layer reads in place
  std::vector<uint8_t> held;
  for (size_t i = layers_.size(); i-- > 0;) {
    std::vector<uint8_t> up, back;
    Status st = layers_[i]->read(cur, up, back);
    if (!st) failure_ = layers_[i]->failure_reason();
    if (!back.empty()) {
      std::vector<uint8_t> down = std::move(back);
      for (size_t j = i + 1; j < layers_.size(); ++j) {
        std::vector<uint8_t> next;
        Status wst = layers_[j]->write(down, true, next);
        if (!wst) {
          if (st) {
            failure_ = layers_[j]->failure_reason();
            st = wst;
          }
          down.clear();
          break;
        }
        down.swap(next);
      }
      to_net.insert(to_net.end(), down.begin(), down.end());
    }
    if (!st) return st;
    held.swap(up);
    cur = held;
  }
  to_app.insert(to_app.end(), cur.begin(), cur.end());
  return Status::ok();
}

Status LayerStack::read_top(std::span<const uint8_t> in, std::vector<uint8_t>& to_app) {
  if (layers_.empty()) {
    to_app.insert(to_app.end(), in.begin(), in.end());
    return Status::ok();
  }
  std::vector<uint8_t> back;
  Status st = layers_.front()->read(in, to_app, back);
  if (!st) failure_ = layers_.front()->failure_reason();
  return st;
}

}  // namespace isthmus::link
