// Asynchronous JetStream publishing for the load generator: up to `inflight`
// unacknowledged messages, optionally paced to `rate` messages per second
// (message i is due at start + i/rate; a publisher that falls behind sends
// what is due at once rather than skipping). Every acknowledgement is checked
// (a reply with "error" or without "seq" counts as failed).
//
// Thread: publish() runs on the caller's thread; acknowledgements arrive on
// a cnats subscription thread and meet the caller under a mutex.
#pragma once

#include <string>
#include <vector>

#include "payload.h"

typedef struct __natsConnection natsConnection;

namespace loadgen {

struct PublishOptions {
  std::vector<std::string> subjects;
  long count = 1000;
  long rate = 0;      // messages per second; 0: as fast as acks allow
  long inflight = 1000;
  long msg_id_every = 0;  // a Nats-Msg-Id on every k-th message (0: none)
  bool index_header = true;  // an Event-Index header on each message
};

// Prints "published N messages in S s (R msg/s), F failed" on stdout.
// Returns 0 if every message was acknowledged without error.
int publish(natsConnection* nc, const PublishOptions& opt, const Payloads& payloads);

}  // namespace loadgen
