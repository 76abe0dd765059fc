#include "nats/msg_bin.h"

namespace isthmus::nats {

void MsgBin::add(natsMsg* msg) {
  if (msg == nullptr) return;
  msgs_.push_back(msg);
  bytes_ += static_cast<size_t>(natsMsg_GetDataLength(msg));
  if (msgs_.size() > kMaxHeld || bytes_ > kMaxHeldBytes) empty();
}

void MsgBin::empty() {
  for (natsMsg* m : msgs_) natsMsg_Destroy(m);
  msgs_.clear();
  bytes_ = 0;
}

}  // namespace isthmus::nats
