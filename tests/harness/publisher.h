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
};

// Event number i of `target` (deterministic: the same i gives the same
// message). seq is the sequence it is expected at (for the publish-time
// Nats-Expected-Last-Sequence header some events carry).
OutMsg seed_event(const PublishTarget& target, uint64_t i, uint64_t seq);

class StreamPublisher {
 public:
  // Publishes `per_tick` rounds every `every` until stop(). Each stream's
  // first event is expected at its current last_seq + 1.
  StreamPublisher(const std::string& url, std::vector<PublishTarget> targets, unsigned per_tick,
                  std::chrono::milliseconds every);
  ~StreamPublisher();
  StreamPublisher(const StreamPublisher&) = delete;
  StreamPublisher& operator=(const StreamPublisher&) = delete;

  // Stops after the current chunk and joins; rethrows the publisher's error.
  void stop();
  // Messages acknowledged so far, per stream and in all.
  uint64_t published(const std::string& stream) const;
  uint64_t published() const { return total_; }
  bool failed() const { return failed_; }

 private:
  void run();

  std::unique_ptr<JetStream> js_;
  std::vector<PublishTarget> targets_;
  unsigned per_tick_;
  std::chrono::milliseconds every_;
  std::map<std::string, uint64_t> next_seq_;  // publisher thread only
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> published_;  // guarded by mu_
  std::atomic<uint64_t> total_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace harness
