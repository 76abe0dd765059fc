// Payloads of the load generator (thread: any; a Payloads is used by one
// thread at a time).
//
// Kinds:
//  - country: the original demo event, a small JSON object with an index and
//    a timestamp, padded with spaces to --size if given. Not stamped.
//  - bytes: a JSON object of exactly --size bytes (>= 64):
//      {"t":<send time>,"p":"<random base64 text>"}
//  - json_events: one event of the benchmark corpus (tests/bench/corpus.h,
//    ~300-450 bytes), with "t":<send time> inserted as its first member.
// Stamped kinds (bytes, json_events) start with `{"t":` followed by the send
// time as 19 decimal digits of CLOCK_REALTIME nanoseconds and a comma; the
// lag consumer reads it back with read_stamp(). The random parts come from a
// pool of pre-generated, deterministic records (seeded), so generating a
// payload is one copy and one number, not a generator run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loadgen {

enum class PayloadKind { kCountry, kBytes, kJsonEvents };

std::optional<PayloadKind> payload_kind_from_name(std::string_view name);

// CLOCK_REALTIME in nanoseconds (the stamp's clock: publisher and consumer
// run on the same host).
int64_t realtime_ns();

class Payloads {
 public:
  // size: bytes for kBytes (at least 64) and padding for kCountry (0: none).
  Payloads(PayloadKind kind, long size, uint64_t seed = 1);

  // The payload of message i, stamped with `now_ns` where the kind is stamped.
  std::string make(long i, int64_t now_ns) const;
  bool stamped() const { return kind_ != PayloadKind::kCountry; }

 private:
  PayloadKind kind_;
  long size_;
  std::vector<std::string> pool_;  // bodies after the stamp (without the leading '{')
};

// The stamp of a stamped payload, or nullopt if it does not start with one.
std::optional<int64_t> read_stamp(std::string_view payload);

}  // namespace loadgen
