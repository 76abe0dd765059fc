// The NATS client protocol as bytes: what a client reads from a server
// (Reader) and what it writes (the append_* functions), for the replication
// data path's own connection (nats/data_conn.h). cnats stays the client for
// everything else; see docs/architecture.md, "The data path".
//
// Protocol (nats-server 2.9): ops end with CRLF; op names are
// case-insensitive; arguments are separated by spaces or tabs.
//   server -> client: INFO {json} | MSG <subj> <sid> [reply] <#bytes> |
//     HMSG <subj> <sid> [reply] <#hdr bytes> <#total bytes> | PING | PONG |
//     +OK | -ERR <text>
//   client -> server: CONNECT {json} | PUB <subj> [reply] <#bytes> |
//     HPUB <subj> [reply] <#hdr> <#total> | SUB <subj> <sid> | UNSUB <sid> |
//     PING | PONG
// A header block is "NATS/1.0[ <status>[ <description>]]\r\n", then
// "Key: Value\r\n" lines, then "\r\n".
//
// Pure bytes in/out: no sockets, no libuv. A Reader belongs to one
// connection (loop thread); the functions are any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace isthmus::nats::wire {

// A control line longer than this is refused (nats-server's own limit on
// what it reads from clients is 4 KiB; INFO with a long connect_urls list
// can exceed that, hence more).
inline constexpr size_t kMaxControlLine = 64 * 1024;

struct ServerOp {
  enum class Kind { kInfo, kMsg, kPing, kPong, kOk, kErr };
  Kind kind = Kind::kOk;
  // kInfo: the JSON object; kErr: the server's text (quotes removed).
  std::string_view text;
  // kMsg (MSG or HMSG):
  std::string_view subject;
  uint64_t sid = 0;
  std::string_view reply;    // empty when none
  std::string_view headers;  // the whole header block; empty for MSG
  std::string_view payload;
};

// Splits a byte stream from a server into ops. Views in a ServerOp point
// into the Reader's buffer and are valid during the callback only.
class Reader {
 public:
  using OnOp = std::function<Status(const ServerOp&)>;

  // A message whose declared size exceeds this is refused before anything
  // is buffered for it (the server's max_payload, from INFO, plus headers).
  void set_max_message(size_t bytes) { max_message_ = bytes; }
  size_t max_message() const { return max_message_; }

  // Parses every complete op in what was fed so far, calling on_op for
  // each. A protocol error (unknown op, malformed arguments, an oversized
  // line or message) is returned and leaves the Reader unusable: close the
  // connection. An error from on_op stops parsing and is returned as is.
  Status feed(std::span<const uint8_t> in, const OnOp& on_op);

  // Bytes held for an incomplete op.
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  // Parses one op at buf_[pos_...]; returns false when it is incomplete.
  Result<bool> next(ServerOp& op);

  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  size_t max_message_ = 1024 * 1024;
  bool failed_ = false;
};

// A subject or reply subject is safe to write when it is not empty and has
// no whitespace or control characters (which would end the token or the
// line). Header keys: printable ASCII without ':' or whitespace; values:
// no CR or LF.
bool valid_subject(std::string_view s);
// Whether a subject falls under a subscription pattern: tokens split at
// '.', '*' matches one token, a final '>' one or more.
bool subject_matches(std::string_view pattern, std::string_view subject);
bool valid_header_key(std::string_view k);
bool valid_header_value(std::string_view v);

// Appenders (client -> server). Callers check subjects with valid_subject:
// they are written as given.
void append_connect(std::string& out, std::string_view json);
void append_sub(std::string& out, std::string_view subject, uint64_t sid);
void append_unsub(std::string& out, uint64_t sid);
void append_pub(std::string& out, std::string_view subject, std::string_view reply, std::string_view payload);
// headers: a complete block (HeaderBlock::bytes()).
void append_hpub(std::string& out, std::string_view subject, std::string_view reply, std::string_view headers,
                 std::string_view payload);
void append_ping(std::string& out);
void append_pong(std::string& out);

// Builds a header block. Reusable: clear() keeps the capacity.
class HeaderBlock {
 public:
  HeaderBlock() { clear(); }
  void clear() { buf_.assign("NATS/1.0\r\n"); }
  // Key and value as given (callers check them with valid_header_*).
  void add(std::string_view key, std::string_view value);
  // Ends the block (the final CRLF) and returns it; add() no more until
  // clear().
  std::string_view finish() {
    buf_.append("\r\n");
    return buf_;
  }

 private:
  std::string buf_;
};

// A parsed header block: the status line's code and description (no-
// responders is "503"; a pull's end "404", "408", "409"; heartbeat "100"),
// then each key and value in order (a key may repeat).
struct HeaderView {
  std::string_view status;
  std::string_view description;
  size_t malformed = 0;  // lines skipped: no ':' or an empty key
};
// Calls each(key, value) for every well-formed header line (key without
// surrounding spaces; value without the spaces after ':'). nats-server does
// not check what a client puts in a header block, so a malformed line is
// skipped and counted, not fatal. kInvalid for a block that does not start
// with "NATS/1.0" or whose lines do not end with CRLF.
Result<HeaderView> parse_headers(std::string_view block,
                                 const std::function<void(std::string_view, std::string_view)>& each);

}  // namespace isthmus::nats::wire
