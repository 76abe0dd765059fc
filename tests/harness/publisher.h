// A background publisher for integration tests: publishes seed-style events
// into one or more streams of one nats-server, round robin, in chunks at a
// steady pace, and checks every acknowledgement (each message must be stored
// at the next sequence of its stream, never as a duplicate).
//
// Events carry the kinds of headers the replication header rule cares about:
// unique Nats-Msg-Id values, a repeated X-Trace header, publish-time headers
// that must travel renamed, and some messages without any header.
//
// Thread: the publishing runs on its own thread with its own connection;
// the accessors may be called from any thread. stop() / join() from the
// owning thread. Lifetime: the destructor stops and joins.
//
//   StreamPublisher pub(url, {{"S", {"s.a", "s.b"}}}, 100, 100ms, 3000);  // 3,000 then done
//   ... pub.join();  // rethrows a misplaced or duplicate ack
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "jetstream.h"

namespace harness {

struct PublishTarget {
  std::string stream;
  std::vector<std::string> subjects;  // events cycle through these
  unsigned weight = 1;                // messages per round
  // Pseudo-random base64 characters added to each event's JSON: S2 barely
  // compresses them (to fill a capped link with known wire bytes).
  size_t pad = 0;
};

// Event number i of `target` (deterministic: the same i gives the same
// message). seq is the sequence it is expected at (for the publish-time
// Nats-Expected-Last-Sequence header some events carry).
OutMsg seed_event(const PublishTarget& target, uint64_t i, uint64_t seq);

class StreamPublisher {
 public:
  // Publishes `per_tick` rounds every `every` (0: the next chunk as soon as
  // the last one is acknowledged) until stop(), or until `limit` messages in
  // all are acknowledged (0: no limit; the last chunk is cut short). Each
  // stream's first event is expected at its current last_seq + 1.
  // first_index: the first event number of each stream (a second publisher
  // into the same streams within the 2-minute duplicate window starts past
  // the first's: equal numbers carry equal Nats-Msg-Id values).
  StreamPublisher(const std::string& url, std::vector<PublishTarget> targets, unsigned per_tick,
                  std::chrono::milliseconds every, uint64_t limit = 0, uint64_t first_index = 0);
  ~StreamPublisher();
  StreamPublisher(const StreamPublisher&) = delete;
  StreamPublisher& operator=(const StreamPublisher&) = delete;

  // Stops after the current chunk and joins; rethrows the publisher's error.
  void stop();
  // With a limit: waits until it is reached (or the publisher failed), joins
  // and rethrows the publisher's error. Without one it would wait forever:
  // use stop().
  void join();
  // Messages acknowledged so far, per stream and in all, and the payload
  // bytes of those messages.
  uint64_t published(const std::string& stream) const;
  uint64_t published() const { return total_; }
  uint64_t payload_bytes() const { return payload_bytes_; }
  bool failed() const { return failed_; }
  // The publishing thread has ended: limit reached, stopped or failed.
  bool finished() const { return finished_; }

 private:
  void run();

  std::unique_ptr<JetStream> js_;
  std::vector<PublishTarget> targets_;
  unsigned per_tick_;
  std::chrono::milliseconds every_;
  uint64_t limit_;
  uint64_t first_index_;
  std::map<std::string, uint64_t> next_seq_;  // publisher thread only
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> published_;  // guarded by mu_
  std::atomic<uint64_t> total_{0};
  std::atomic<uint64_t> payload_bytes_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::atomic<bool> finished_{false};
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace harness
