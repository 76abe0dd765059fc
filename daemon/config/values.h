// Parsers and validators for the scalar value syntaxes used in the
// configuration file: durations, sizes, host:port pairs and names.
// Pure functions: no I/O, no toml++; errors are Status values whose message
// is fit to follow "KEY: " in a ConfigError.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"
#include "util/status.h"

namespace isthmus::config {

// Durations: one or more <number><unit> groups, Go style: "250ms", "2s",
// "1.5s", "1m30s", "1h". Units: ms, s, m, h. The result must be a whole
// number of milliseconds ("1.0005s" is refused). No sign, no spaces.
Result<Millis> parse_duration(std::string_view text);

// Sizes: "<number>[ ]<unit>" or a plain number of bytes. Binary units KiB,
// MiB, GiB, TiB (powers of 1024), decimal units kB/KB, MB, GB, TB (powers of
// 1000), and B. A fraction is allowed when the result is a whole number of
// bytes ("1.5KiB" = 1536). Units are case-sensitive ("mb" is refused).
Result<uint64_t> parse_size(std::string_view text);

// "host:port" or "[ipv6]:port". Host: a DNS name, an IPv4 literal, or an
// IPv6 literal in brackets. Port: 1..65535.
Result<HostPort> parse_host_port(std::string_view text);

// The shortest exact rendering: "2s", "250ms", "1m", "1h", "1500ms".
std::string format_duration(Millis d);
// "64KiB", "8MiB", "1GiB" when exact, else "1000 bytes".
std::string format_size(uint64_t bytes);

// Region and peer names: [a-z0-9][a-z0-9_-]{0,31}.
Status check_region_name(std::string_view name);
// JetStream stream names: 1..255 bytes; no whitespace, control characters,
// '.', '*', '>', '/' or '\'.
Status check_stream_name(std::string_view name);
// NATS server URL: "nats://host[:port]" or "tls://host[:port]", optionally
// with "user:pass@" or "token@" before the host.
Status check_nats_url(std::string_view url);

}  // namespace isthmus::config
