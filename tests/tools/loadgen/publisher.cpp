#include "publisher.h"

#include <nats/nats.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

namespace loadgen {
namespace {

struct Acks {
  std::mutex mu;
  std::condition_variable cv;
  long outstanding = 0, ok = 0, failed = 0;
};

void on_ack(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* a = static_cast<Acks*>(closure);
  std::string d(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
  bool good = d.find("\"seq\"") != std::string::npos && d.find("\"error\"") == std::string::npos;
  natsMsg_Destroy(msg);
  std::lock_guard<std::mutex> lk(a->mu);
  if (!good && a->failed < 5) std::fprintf(stderr, "publish failed: %s\n", d.c_str());
  a->outstanding--;
  (good ? a->ok : a->failed)++;
  a->cv.notify_all();
}

}  // namespace

int publish(natsConnection* nc, const PublishOptions& opt, const Payloads& payloads) {
  Acks acks;
  natsInbox* inbox = nullptr;
  natsInbox_Create(&inbox);
  std::string prefix = std::string(inbox) + ".";
  natsInbox_Destroy(inbox);
  natsSubscription* sub = nullptr;
  if (natsConnection_Subscribe(&sub, nc, (prefix + "*").c_str(), on_ack, &acks) != NATS_OK) return 1;
  natsSubscription_SetPendingLimits(sub, -1, -1);
  auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < opt.count; ++i) {
    if (opt.rate > 0) {
      auto due = start + std::chrono::nanoseconds(static_cast<int64_t>(i) * 1000000000 / opt.rate);
      if (std::chrono::steady_clock::now() < due) std::this_thread::sleep_until(due);
    }
    {
      std::unique_lock<std::mutex> lk(acks.mu);
      acks.cv.wait(lk, [&] { return acks.outstanding < opt.inflight; });
      acks.outstanding++;
    }
    natsMsg* m = nullptr;
    std::string p = payloads.make(i, realtime_ns());
    std::string reply = prefix + std::to_string(i);
    natsMsg_Create(&m, opt.subjects[static_cast<size_t>(i) % opt.subjects.size()].c_str(), reply.c_str(),
                   p.data(), static_cast<int>(p.size()));
    if (opt.index_header) natsMsgHeader_Set(m, "Event-Index", std::to_string(i).c_str());
    if (opt.msg_id_every > 0 && i % opt.msg_id_every == 0) {
      natsMsgHeader_Set(m, "Nats-Msg-Id", ("evt-" + std::to_string(i)).c_str());
    }
    natsConnection_PublishMsg(nc, m);
    natsMsg_Destroy(m);
  }
  {
    std::unique_lock<std::mutex> lk(acks.mu);
    acks.cv.wait_for(lk, std::chrono::seconds(30), [&] { return acks.outstanding == 0; });
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  natsSubscription_Destroy(sub);
  std::lock_guard<std::mutex> lk(acks.mu);
  std::printf("published %ld messages in %.2f s (%.0f msg/s), %ld failed\n", acks.ok, secs,
              static_cast<double>(acks.ok) / secs, acks.failed + acks.outstanding);
  return acks.failed == 0 && acks.outstanding == 0 ? 0 : 1;
}

}  // namespace loadgen
