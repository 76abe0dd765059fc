// nats::MsgBin holds messages until empty(), but never more than kMaxHeld
// messages or kMaxHeldBytes payload bytes: the memory it can keep is bounded
// however long the loop goes without a flush.
#include <nats/nats.h>

#include <catch2/catch.hpp>
#include <string>

#include "nats/msg_bin.h"

using isthmus::nats::MsgBin;

namespace {
// natsMsg_Destroy hands messages to the library's collector thread: the
// library must be open (idempotent).
natsMsg* make(size_t payload) {
  REQUIRE(nats_Open(-1) == NATS_OK);
  std::string data(payload, 'x');
  natsMsg* m = nullptr;
  REQUIRE(natsMsg_Create(&m, "s.x", nullptr, data.data(), static_cast<int>(data.size())) == NATS_OK);
  return m;
}
}  // namespace

TEST_CASE("MsgBin holds messages until emptied", "[msg_bin]") {
  MsgBin bin;
  for (int i = 0; i < 10; ++i) bin.add(make(16));
  CHECK(bin.held() == 10);
  bin.add(nullptr);
  CHECK(bin.held() == 10);
  bin.empty();
  CHECK(bin.held() == 0);
}

TEST_CASE("MsgBin never holds more than its message bound", "[msg_bin]") {
  MsgBin bin;
  for (size_t i = 0; i < MsgBin::kMaxHeld; ++i) bin.add(make(1));
  CHECK(bin.held() == MsgBin::kMaxHeld);
  bin.add(make(1));  // one over: all destroyed at once
  CHECK(bin.held() == 0);
}

TEST_CASE("MsgBin never holds more than its byte bound", "[msg_bin]") {
  MsgBin bin;
  const size_t big = MsgBin::kMaxHeldBytes / 4;
  for (int i = 0; i < 4; ++i) bin.add(make(big));
  CHECK(bin.held() == 4);  // exactly at the bound
  bin.add(make(1));
  CHECK(bin.held() == 0);
}
