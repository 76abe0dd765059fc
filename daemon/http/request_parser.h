// RequestParser: bytes-in glue around llhttp, no libuv. Feed the bytes of one
// connection in any split; complete requests come out in order (pipelining).
// Limits are enforced before any buffer grows: the request line plus headers
// of one request may not exceed max_header_bytes (431), nor the header count
// max_header_count (431); a body may not exceed max_body_bytes (413, checked
// against Content-Length up front and against chunked data as it arrives).
// Malformed input gives 400; CONNECT and protocol upgrades 501; an HTTP
// version other than 1.0/1.1 505. Errors are values and sticky: once failed,
// the parser ignores further input; requests completed before the error stay
// available, so a server answers them first, then the error, then closes.
// After a request that does not keep the connection alive, further input is
// ignored (closed()).
// Lifetime: owns its llhttp state; not copyable or movable.
// Thread-safety: none; one parser per connection, used from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/request.h"

namespace isthmus::http {

struct ParserLimits {
  size_t max_header_bytes = 16 * 1024;  // request line + header block, per request
  size_t max_header_count = 100;
  size_t max_body_bytes = 1024 * 1024;
};

// A request the parser refused. `status` is the HTTP status to answer with
// (400, 413, 431, 501, 505); `reason` is short, human-readable, and safe to
// send back to the client.
struct ParseError {
  int status = 0;
  std::string reason;
};

class RequestParser {
 public:
  explicit RequestParser(ParserLimits limits = {});
  ~RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Consumes `data` (all of it, unless an error occurs or the connection is
  // closed()). Returns false once the parser has failed (now or before).
  bool feed(std::string_view data);

  // The peer has closed its sending side. A request cut short is an error
  // (400); nothing pending is fine. Returns false when failed.
  bool finish();

  // Completed requests, oldest first.
  bool has_request() const;
  size_t pending() const;
  std::optional<Request> next();

  // A request has started (first byte seen) but is not complete yet.
  bool in_progress() const;
  // ...and its header block is complete (only the body is outstanding).
  bool headers_complete() const;
  // The request in progress sent "Expect: 100-continue" and its body has not
  // arrived yet. Cleared by this call (reports each request once).
  bool take_expect_continue();

  bool failed() const;
  const ParseError& error() const;
  // A completed request ended the connection (no keep-alive): input is ignored.
  bool closed() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace isthmus::http
