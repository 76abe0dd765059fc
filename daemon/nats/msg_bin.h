// MsgBin: destroys cnats messages in batches.
//
// natsMsg_Destroy hands a message to cnats' garbage-collector thread and, if
// that thread is asleep, wakes it: a futex call and a context switch for
// every message when messages are destroyed one at a time a few microseconds
// apart (measured: 7% of each daemon's CPU at 20,000 msg/s). Destroying a
// burst's messages back to back wakes it about once.
//
// Thread: the thread that owns it (the loop). Lifetime: empty() it at the
// end of each batch of work; the destructor empties it too, so it must be
// destroyed while the cnats library is still open.
#pragma once

#include <nats/nats.h>

#include <cstddef>
#include <vector>

namespace isthmus::nats {

class MsgBin {
 public:
  MsgBin() = default;
  ~MsgBin() { empty(); }
  MsgBin(const MsgBin&) = delete;
  MsgBin& operator=(const MsgBin&) = delete;

  // Takes ownership of msg (null is ignored). Messages are held until
  // empty(), or destroyed at once once more than kMaxHeld messages or
  // kMaxHeldBytes payload bytes are held.
  void add(natsMsg* msg);
  void empty();
  size_t held() const { return msgs_.size(); }

  static constexpr size_t kMaxHeld = 1024;
  static constexpr size_t kMaxHeldBytes = 1 << 20;

 private:
  std::vector<natsMsg*> msgs_;
  size_t bytes_ = 0;
};

}  // namespace isthmus::nats
