// JetStream helpers for tests over cnats (libnats 3.4.1, synchronous API),
// using the raw JSON API ($JS.API.*) with nlohmann::json.
//
// Errors: every method throws std::runtime_error (JetStream API errors
// included, with their code and description), except where a "not found"
// is an expected answer (stream_info, get_msg return nullopt).
// Thread-safety: one JetStream may be used from several threads (cnats
// connections are thread-safe); bulk publishes and read_stream each use a
// private inbox subscription.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

typedef struct __natsConnection natsConnection;

namespace harness {

// Header fields in the order they appear in a NATS/1.0 header block.
using Headers = std::vector<std::pair<std::string, std::string>>;

struct OutMsg {
  std::string subject;
  Headers headers;
  std::string payload;
};

struct StoredMsg {
  uint64_t seq = 0;
  std::string subject;
  Headers headers;       // decoded from the stored header block, in order
  std::string payload;
  std::string time;      // as JetStream reports it (RFC 3339)
  int64_t time_ns = 0;   // the same as Unix nanoseconds
};

struct PubAck {
  std::string stream;
  uint64_t seq = 0;
  bool duplicate = false;
};

struct StreamInfo {
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t messages = 0;
  uint64_t num_deleted = 0;
  std::vector<uint64_t> deleted;  // only when asked for with deleted_details
  nlohmann::json raw;  // the whole response
};

// Decoders shared with tests.
std::string base64_decode(const std::string& in);                 // throws on bad input
Headers parse_header_block(const std::string& block);             // "NATS/1.0\r\nK: V\r\n\r\n"
int64_t parse_rfc3339_ns(const std::string& t);                   // throws on bad input
std::string to_string(const Headers& h);                          // "K: V; K2: V2"

// How the test's client connects besides the URL: for servers that require
// TLS (a test CA to trust, beside the system's) or run in operator mode.
struct ClientOptions {
  std::string ca_file;      // PEM CA(s) trusted for the server's certificate
  std::string credentials;  // a .creds file
};

class JetStream {
 public:
  using ms = std::chrono::milliseconds;

  // Connects to url (e.g. "nats://127.0.0.1:4222"). Reconnects forever in the
  // background if the server goes away; requests made meanwhile fail.
  explicit JetStream(const std::string& url, ms connect_timeout = std::chrono::seconds(5),
                     const ClientOptions& options = {});
  ~JetStream();
  JetStream(const JetStream&) = delete;
  JetStream& operator=(const JetStream&) = delete;

  natsConnection* connection() const { return nc_; }
  const std::string& url() const { return url_; }

  // Raw request/reply; returns the reply payload.
  std::string request_raw(const std::string& subject, const std::string& body,
                          ms timeout = std::chrono::seconds(5));
  // JSON API request; throws if the reply carries an "error" object.
  nlohmann::json api(const std::string& subject, const nlohmann::json& body,
                     ms timeout = std::chrono::seconds(5));
  // Same but returns the reply even when it carries an error.
  nlohmann::json api_any(const std::string& subject, const nlohmann::json& body,
                         ms timeout = std::chrono::seconds(5));

  void create_stream(const nlohmann::json& config);
  // deleted_details: also list the deleted sequences (StreamInfo::deleted).
  std::optional<StreamInfo> stream_info(const std::string& stream, bool deleted_details = false);
  StreamInfo require_stream_info(const std::string& stream, bool deleted_details = false);  // throws if missing
  // Purge everything, or everything below `seq` ({"seq": seq}).
  void purge(const std::string& stream, std::optional<uint64_t> below_seq = std::nullopt);
  void delete_msg(const std::string& stream, uint64_t seq);

  // Publishes and waits for the JetStream ack. Throws on an API error (the
  // message names the error) or a no-responders status.
  PubAck publish(const OutMsg& msg, ms timeout = std::chrono::seconds(5));
  // Publishes all messages in order with at most max_in_flight unacked,
  // collecting acks on one inbox subscription. Returns each message's ack
  // (same order). Throws on the first error ack or if acks do not all
  // arrive within `timeout`.
  std::vector<PubAck> publish_bulk(const std::vector<OutMsg>& msgs, size_t max_in_flight = 512,
                                   ms timeout = std::chrono::seconds(60));

  // One stored message; nullopt if the sequence is absent (deleted or out of
  // range).
  std::optional<StoredMsg> get_msg(const std::string& stream, uint64_t seq,
                                   ms timeout = std::chrono::seconds(5));
  // Every stored message from first_seq to last_seq (as of the call), in
  // sequence order, skipping deleted sequences. Requests are pipelined
  // (`window` in flight).
  std::vector<StoredMsg> read_stream(const std::string& stream, size_t window = 256,
                                     ms timeout = std::chrono::seconds(60));
  // Same for an explicit range [from, to].
  std::vector<StoredMsg> read_range(const std::string& stream, uint64_t from, uint64_t to,
                                    size_t window = 256, ms timeout = std::chrono::seconds(60));

 private:
  std::string url_;
  natsConnection* nc_ = nullptr;
};

// Parses one $JS.API.STREAM.MSG.GET response; nullopt for "no message found".
std::optional<StoredMsg> parse_msg_get(const std::string& reply);

}  // namespace harness
