// NATS URLs (nats.urls): "nats://[user:pass@|token@]host[:port]" or the same
// with tls://, split into their parts, for both connections to the local
// nats-server (cnats' in nats/client.h, the data connection in
// nats/data_conn.h), and a form without the user info for logs and /healthz.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace isthmus::nats {

// A nats:// or tls:// URL split into its parts (port 4222 by default).
struct NatsUrl {
  bool tls = false;
  std::string host;  // an IPv6 address without its brackets
  uint16_t port = 4222;
  std::string user, password;  // "user:pass@"
  std::string token;           // "token@"

  // "tls://host:port" (IPv6 in brackets): no user, password or token, for
  // logs and error messages.
  std::string display() const;
};
Result<NatsUrl> parse_nats_url(std::string_view url);

}  // namespace isthmus::nats
