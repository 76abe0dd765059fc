// JetStream publish acknowledgements: {"stream":"S", "seq":N} and its
// variants ("domain", "duplicate": true, or {"error":{...}}).
//
// Pure code, any thread. The usual acknowledgement is read without building
// a JSON tree (a follower may read tens of thousands a second); anything
// unusual goes through the full JSON parser.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace isthmus::nats {

struct PubAck {
  std::string stream;
  uint64_t seq = 0;
  bool duplicate = false;
  // Refused: err_code (JetStream's, e.g. 10071 wrong last sequence) and the
  // server's description; err_code 0 and an empty description otherwise.
  int err_code = 0;
  std::string error;
  bool refused() const { return !error.empty() || err_code != 0; }
};

// kInvalid when the body is not an acknowledgement at all.
Result<PubAck> parse_pub_ack(std::string_view body);

// The sequence nats-server names in a "wrong last sequence: N" refusal
// (err_code 10071): its own idea of the stream's last sequence.
bool wrong_last_sequence_of(std::string_view description, uint64_t& out);

}  // namespace isthmus::nats
