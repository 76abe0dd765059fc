// A small blocking HTTP/1.1 client: one request per connection
// (Connection: close), with one deadline for connect, send and receive.
// Enough for isthmusctl talking to the daemon's API; not a general client
// (no TLS, no redirects, no keep-alive).
// Thread-safety: no shared state; calls may run on any thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ctl/url.h"
#include "util/status.h"

namespace isthmus::ctl {

struct HttpResponse {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // in order received
  std::string body;                                          // de-chunked

  // First value of a header, case-insensitive name; "" if absent.
  std::string header(std::string_view name) const;
};

enum class ParseState { kIncomplete, kComplete };

// Parses a whole response received so far. `eof` says the peer closed the
// connection: a body without Content-Length or chunked encoding then ends
// there. kIncomplete: read more. An error Status: the bytes are not a valid
// HTTP/1.x response (or a response complete only because of an early EOF).
Result<ParseState> parse_response(std::string_view data, bool eof, HttpResponse& out);

// GET url.target(path). `timeout` bounds the whole exchange. Errors are
// kIo (cannot connect, reset), kTimeout, kInvalid (not HTTP), or
// kUnavailable when a signal interrupted the wait (the caller decides what
// that means). Messages name the URL.
Result<HttpResponse> http_get(const Url& url, std::string_view path, std::chrono::milliseconds timeout);
// Any method, with a JSON body (sent with Content-Length unless GET/HEAD).
Result<HttpResponse> http_request(const Url& url, std::string_view method, std::string_view path,
                                  std::string_view body, std::chrono::milliseconds timeout);

}  // namespace isthmus::ctl
