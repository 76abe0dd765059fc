// Link frames: the messages two region daemons exchange, and their binary
// encoding. Pure code (no I/O, no libuv); docs/wire-format.md is the spec.
//
//   frame := length:u32 big-endian (of type+body) | type:u8 | body
//
// Bodies use unsigned LEB128 varints and length-prefixed strings (wire.h).
// FrameReader refuses a frame whose declared length exceeds its limit before
// buffering any of it. Thread-safety: none; each link owns its reader.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace isthmus::link {

constexpr uint32_t kHelloMagic = 0x49535448;  // "ISTH"
constexpr uint16_t kProtocolVersion = 1;
constexpr size_t kFrameHeaderBytes = 5;
constexpr size_t kMaxNameBytes = 256;        // region and stream names
constexpr size_t kMaxSubjectBytes = 4096;
constexpr size_t kMaxHeaders = 1024;         // header fields per message

// HELLO flags. kHelloFlagS2: the sender S2-compresses this link after the
// HELLO exchange; both ends must set it or neither.
constexpr uint32_t kHelloFlagS2 = 1u << 0;

enum class FrameType : uint8_t {
  kHello = 1,       // both ways, first frame on a link
  kStreamReq = 2,   // follower -> leader: describe stream
  kStreamInfo = 3,  // leader -> follower: configuration and state
  kSubscribe = 4,   // follower -> leader: send from sequence N
  kData = 5,        // leader -> follower: a batch of messages
  kAck = 6,         // follower -> leader: highest sequence stored
  kState = 7,       // leader -> follower: stream state (idle keepalive for lag)
  kStop = 8,        // follower -> leader: stop sending a stream
  kHeartbeat = 9,   // both ways: liveness and clock estimate
  kGoAway = 10,     // both ways: the sender is closing the link, with a reason
  kDeleted = 11,    // leader -> follower: sequences deleted at the leader (reconcile)
  kLagReport = 12,  // follower -> leader: the follower's lag figures (about 1/s, and on SUBSCRIBE)
};
const char* frame_type_name(FrameType t);

struct Hello {
  uint16_t version = kProtocolVersion;
  std::string region;
  uint64_t epoch = 0;
  uint32_t flags = 0;  // negotiated features: kHelloFlag*
};

struct StreamReq {
  std::string stream;
};

struct StreamInfo {
  std::string stream;
  std::string error;        // non-empty: the leader cannot serve this stream
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  std::string config_json;  // the leader's JetStream stream configuration
};

struct Subscribe {
  std::string stream;
  uint64_t from_seq = 0;  // next sequence the follower needs
  uint64_t epoch = 0;
  uint64_t sub_id = 0;    // chosen by the follower; DATA for older ids is ignored
};

// One replicated message: exactly as stored at the leader.
struct Message {
  uint64_t seq = 0;      // leader stream sequence
  int64_t time_ns = 0;   // leader store time, Unix ns
  std::string subject;
  std::vector<std::pair<std::string, std::string>> headers;  // in stored order
  std::string payload;
  size_t wire_size() const;  // approximate bytes, for windows
};

struct Data {
  std::string stream;
  uint64_t epoch = 0;
  uint64_t sub_id = 0;  // the SUBSCRIBE this batch answers
  uint64_t leader_last_seq = 0;
  std::vector<Message> msgs;
};

struct Ack {
  std::string stream;
  uint64_t stored_seq = 0;     // highest contiguous sequence stored
  int64_t stored_time_ns = 0;  // origin time of that message
};

struct State {
  std::string stream;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  int64_t last_time_ns = 0;  // store time of the last message (0 if none)
};

struct Stop {
  std::string stream;
  std::string reason;
};

// Sequences the leader no longer holds between its first and last sequence
// (interior deletes, purges by subject, interest consumption out of order),
// ascending. A reconcile pass sends them in chunks of at most
// kMaxDeletedPerFrame; each chunk stands alone.
constexpr size_t kMaxDeletedPerFrame = 16384;
struct Deleted {
  std::string stream;
  uint64_t first_seq = 0;      // the leader's first sequence when the list was read
  std::vector<uint64_t> seqs;  // strictly ascending, each >= 1
};

struct Heartbeat {
  int64_t send_ns = 0;      // sender's wall clock at send
  int64_t echo_send_ns = 0; // send_ns of the last heartbeat received from the peer
  int64_t echo_recv_ns = 0; // our wall clock when that one arrived
};

struct GoAway {
  std::string reason;
};

// The error of a STREAM_INFO a leader sends unasked, to a follower that
// replicates, when its stream is no longer the one the follower copies
// (deleted and created again): it begins with this, and the follower
// diverges. (Any other STREAM_INFO with an error while replicating is a
// late answer to an earlier request, and is ignored.)
inline constexpr std::string_view kReplacedPrefix = "replaced: ";
// ... and this when the leader no longer leads the stream (removed from its
// configuration by reload), sent unasked to a follower that replicates,
// prepares or asks, and in answer to a SUBSCRIBE or LAG_REPORT of a stream
// it does not lead: the follower stops with an error (and asks again every
// 2 s, as after any error).
inline constexpr std::string_view kNotLeaderPrefix = "not leader: ";
// The reason of a STOP from a follower whose configuration no longer has the
// stream (removed by reload) begins with this: the leader's row for it stays
// `stopped` across link drops (it will not ask for the stream) until it asks.
inline constexpr std::string_view kStopRemovedPrefix = "removed: ";

// LAG_REPORT flags.
constexpr uint32_t kLagFlagOffsetKnown = 1u << 0;  // clock_offset_* is an estimate
constexpr uint32_t kLagFlagSyncStarted = 1u << 1;  // sync_* fields are meaningful
constexpr uint32_t kLagFlagSyncing = 1u << 2;      // the sync (below) not yet caught up
constexpr uint32_t kLagFlagRebuild = 1u << 3;      // sync_* describe a rebuild, not the initial sync
constexpr uint32_t kLagFlagNotApplying = 1u << 4;  // the stream is in error or diverged at the follower

// What a follower measured for one stream, sent to its leader about once a
// second so that both show the same figures. Times in ns; -1 means unknown.
struct LagReport {
  std::string stream;
  uint64_t applied_seq = 0;
  uint32_t flags = 0;                 // kLagFlag*
  int64_t time_lag_ns = -1;           // current, clock-corrected, never negative
  int64_t p50_ns = -1, p95_ns = -1, p99_ns = -1;  // over the sliding window
  uint64_t window_samples = 0;
  int64_t newest_applied_origin_ns = 0;  // leader store time of the newest applied message (0: none)
  int64_t newest_applied_age_ns = -1;    // see docs/architecture.md "Lag"
  int64_t clock_offset_ns = 0;           // leader's clock minus the follower's
  int64_t clock_offset_error_ns = -1;
  uint64_t sync_done = 0, sync_to_go = 0;
  uint64_t sync_rate_milli = 0;          // messages per 1000 s (rate x 1000)
  int64_t sync_eta_ms = -1;
};

// Encoders append one whole frame (header included) to out.
void encode(const Hello& f, std::vector<uint8_t>& out);
void encode(const StreamReq& f, std::vector<uint8_t>& out);
void encode(const StreamInfo& f, std::vector<uint8_t>& out);
void encode(const Subscribe& f, std::vector<uint8_t>& out);
void encode(const Data& f, std::vector<uint8_t>& out);
void encode(const Ack& f, std::vector<uint8_t>& out);
void encode(const State& f, std::vector<uint8_t>& out);
void encode(const Stop& f, std::vector<uint8_t>& out);
void encode(const Heartbeat& f, std::vector<uint8_t>& out);
void encode(const GoAway& f, std::vector<uint8_t>& out);
void encode(const Deleted& f, std::vector<uint8_t>& out);
void encode(const LagReport& f, std::vector<uint8_t>& out);

// Decoders take a frame body (after the 5-byte header). Trailing bytes are an
// error; so is anything truncated or over its limit.
Status decode(std::span<const uint8_t> body, Hello& f);
Status decode(std::span<const uint8_t> body, StreamReq& f);
Status decode(std::span<const uint8_t> body, StreamInfo& f);
Status decode(std::span<const uint8_t> body, Subscribe& f);
Status decode(std::span<const uint8_t> body, Data& f);
Status decode(std::span<const uint8_t> body, Ack& f);
Status decode(std::span<const uint8_t> body, State& f);
Status decode(std::span<const uint8_t> body, Stop& f);
Status decode(std::span<const uint8_t> body, Heartbeat& f);
Status decode(std::span<const uint8_t> body, GoAway& f);
Status decode(std::span<const uint8_t> body, Deleted& f);
Status decode(std::span<const uint8_t> body, LagReport& f);

// Splits a byte stream into frames. Feed bytes in any split; for each whole
// frame the callback receives its type and body. A declared length above
// max_frame_bytes (or below 1) is refused before anything is buffered.
class FrameReader {
 public:
  using OnFrame = std::function<Status(FrameType, std::span<const uint8_t>)>;
  explicit FrameReader(uint32_t max_frame_bytes) : max_(max_frame_bytes) {}
  // Returns the first error (from framing or from the callback); after an
  // error the reader must not be fed again.
  Status feed(std::span<const uint8_t> bytes, const OnFrame& on_frame);
  size_t buffered() const { return buf_.size(); }
  // Called from inside on_frame: feed() returns after this frame and keeps
  // the rest of its input buffered (e.g. the bytes after a HELLO, which
  // belong to a layer pushed in answer to it). Take them with take_buffered().
  void pause() { paused_ = true; }
  std::vector<uint8_t> take_buffered() { return std::exchange(buf_, {}); }

 private:
  uint32_t max_;
  bool paused_ = false;
  std::vector<uint8_t> buf_;
};

}  // namespace isthmus::link
