// The seed document's four streams as the tests and the soak create them at
// the leader: three interest-retention COVENANT_* streams (max age, max
// messages, discard old) and ALERTS_INCIDENTS (limits retention, 1 day,
// 10,000 messages, discard new). File storage, one in-cluster replica.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "jetstream.h"

namespace harness {

struct SeedStream {
  std::string name;
  std::vector<std::string> subjects;
  std::string retention;  // "interest" | "limits"
  int64_t max_age_ns;
  int64_t max_msgs;
  std::string discard;    // "old" | "new"
  unsigned weight;        // messages per publishing round (StreamPublisher)
};

const std::vector<SeedStream>& seed_streams();

// The $JS.API.STREAM.CREATE body of `s`.
nlohmann::json seed_stream_config(const SeedStream& s);

// Creates the four streams at a leader's server and, on each interest
// stream, an application durable ANALYTICS that never reads: the interest
// streams keep every message (trimmed by their limits only).
void create_seed_streams(JetStream& js);

}  // namespace harness
