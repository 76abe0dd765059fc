#include "catchup_watch.h"

#include <nats/nats.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "payload.h"

namespace loadgen {

int watch_catchup(natsConnection* nc, const std::string& stream, uint64_t target, double timeout_s,
                  long interval_ms) {
  const std::string subj = "$JS.API.STREAM.INFO." + stream;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int64_t first_ns = 0, done_ns = 0;
  uint64_t first_seq = 0, last_seq = 0;
  long polls = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    natsMsg* reply = nullptr;
    natsStatus s = natsConnection_Request(&reply, nc, subj.c_str(), "", 0, 2000);
    const int64_t now = realtime_ns();
    polls++;
    if (s == NATS_OK) {
      auto j = nlohmann::json::parse(
          std::string(natsMsg_GetData(reply), static_cast<size_t>(natsMsg_GetDataLength(reply))), nullptr, false);
      natsMsg_Destroy(reply);
      if (!j.is_discarded() && j.contains("state")) {
        last_seq = j["state"].value("last_seq", uint64_t{0});
        if (last_seq > 0 && first_ns == 0) {
          first_ns = now;
          first_seq = last_seq;
        }
        if (last_seq >= target) {
          done_ns = now;
          break;
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
  nlohmann::json out = {{"ok", done_ns != 0}, {"first_ns", first_ns}, {"first_seq", first_seq},
                        {"done_ns", done_ns}, {"last_seq", last_seq}, {"polls", polls}};
  std::printf("%s\n", out.dump().c_str());
  return done_ns != 0 ? 0 : 1;
}

}  // namespace loadgen
