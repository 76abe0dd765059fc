// Request: one parsed HTTP/1.x request as handed to route handlers, with its
// headers (case-insensitive lookup) and the peer it came from.
// Lifetime: a plain value. Handlers receive it by const reference, valid only
// for the duration of the call; an asynchronous handler copies what it needs.
// Thread-safety: plain value type (the server uses it on the loop thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace isthmus::http {

// Where a request came from. Filled in by the server at accept time; empty
// (ip == "") for requests that did not come from a socket (e.g. tests).
struct PeerAddress {
  std::string ip;     // textual: "127.0.0.1", "::1"
  uint16_t port = 0;

  // True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.x.y.z).
  // Actions that must be local-only check this.
  bool is_loopback() const;
  std::string to_string() const;  // "127.0.0.1:5000", "[::1]:5000"
};

// ASCII case-insensitive comparison, as header names require.
bool iequals(std::string_view a, std::string_view b);

// Request headers in arrival order. Repeated fields stay separate entries;
// lookups return the first.
class Headers {
 public:
  using Field = std::pair<std::string, std::string>;

  void add(std::string name, std::string value);
  // First value for `name` (case-insensitive), or nullptr.
  const std::string* find(std::string_view name) const;
  // First value for `name`, or "" when absent.
  std::string_view get(std::string_view name) const;
  bool has(std::string_view name) const { return find(name) != nullptr; }

  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  std::vector<Field>::const_iterator begin() const { return fields_.begin(); }
  std::vector<Field>::const_iterator end() const { return fields_.end(); }

 private:
  std::vector<Field> fields_;
};

struct Request {
  std::string method;  // upper case, as sent: "GET", "POST", ...
  std::string target;  // request-target as sent (origin-form after parsing)
  std::string path;    // target before '?', not percent-decoded: "/v1/lag"
  std::string query;   // after '?', without it; "" when absent
  int http_major = 1;
  int http_minor = 1;
  Headers headers;
  std::string body;    // de-chunked
  // True when the connection may carry another request after this one
  // (HTTP/1.1 without "Connection: close", or HTTP/1.0 with keep-alive).
  bool keep_alive = true;
  PeerAddress peer;

  // The client asked for the connection to end after this request.
  bool wants_close() const { return !keep_alive; }

  // Value of the first `key` in the query string, percent-decoded ('+' is a
  // space); "" for a key given without '='; nullopt when absent.
  std::optional<std::string> query_param(std::string_view key) const;
};

// Percent-decodes `s` ('+' becomes a space when `plus_is_space`). Invalid
// escapes are kept literally.
std::string percent_decode(std::string_view s, bool plus_is_space);

}  // namespace isthmus::http
