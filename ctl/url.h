// The daemon's address as isthmusctl takes it on the command line.
// Only plain HTTP: the API listens on loopback by default (docs/http-api.md).
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace isthmus::ctl {

struct Url {
  std::string host;       // DNS name or IP literal, without IPv6 brackets
  uint16_t port = 80;
  std::string base_path;  // "" or a prefix without trailing '/', e.g. "/isthmus"

  // http://host:port[/base]; IPv6 hosts in brackets.
  std::string to_string() const;
  // "host:port" for the Host header (IPv6 in brackets).
  std::string authority() const;
  // base_path + path; path starts with '/'.
  std::string target(std::string_view path) const;
};

// Accepts "http://host[:port][/base]" and, for convenience, "host[:port]"
// (taken as http). IPv6 literals must be bracketed: "http://[::1]:7480".
// Refused, with a message naming the problem: other schemes (https is not
// supported), user info, query or fragment, an empty host, a port outside
// 1..65535.
Result<Url> parse_url(std::string_view text);

}  // namespace isthmus::ctl
