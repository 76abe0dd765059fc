// Fault settings and the control protocol's command parser (see README.md).
// Pure: no libuv, no sockets. Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace faultproxy {

// a2b: client -> target; b2a: target -> client.
enum Dir : int { kA2B = 0, kB2A = 1 };
constexpr int kDirCount = 2;
const char* dir_name(int dir);

constexpr uint64_t kDefaultQueueBytes = 1u << 20;

// Faults of one direction. Defaults: no fault.
struct DirSettings {
  uint32_t delay_ms = 0;
  uint32_t jitter_ms = 0;     // release time += uniform[-jitter, +jitter]
  uint64_t rate_bps = 0;      // bytes per second shared by all connections; 0: unlimited
  uint32_t slice = 0;         // max bytes per write; 0: no slicing
  bool stall = false;         // forward nothing (data waits, backpressure applies)
  uint64_t cut_after = 0;     // connections accepted from now on are reset after
                              // this many bytes in this direction; 0: off
  uint64_t queue_bytes = kDefaultQueueBytes;  // reading stops above this

  // "delay_ms=.. jitter_ms=.. rate_bps=.. slice=.. stall=on|off cut_after=.. queue_bytes=.."
  std::string format() const;
};

// The keys a `set` command changes; the rest stay as they were.
struct SettingsPatch {
  std::optional<uint32_t> delay_ms, jitter_ms, slice;
  std::optional<uint64_t> rate_bps, cut_after, queue_bytes;
  std::optional<bool> stall;
  void apply(DirSettings* s) const;
};

enum class Verb { kSet, kGet, kStall, kCut, kReset, kDown, kUp, kStats, kClear, kPing };

struct Command {
  Verb verb = Verb::kPing;
  unsigned dirs = 0;      // bit (1 << Dir) per direction named
  SettingsPatch patch;    // kSet
  bool on = false;        // kStall
  uint64_t count = 0;     // kCut: bytes still forwarded before the reset
};

// Parses one line (without its newline; a trailing '\r' is ignored).
// Returns an empty string on success, else the reason for an "err" reply.
std::string parse_command(std::string_view line, Command* out);

}  // namespace faultproxy
