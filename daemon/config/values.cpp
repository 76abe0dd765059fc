#include "config/values.h"

#include <arpa/inet.h>

#include <array>
#include <cctype>
#include <limits>

#include "util/redact.h"

namespace isthmus::config {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

Status invalid(std::string msg) { return Status(Code::kInvalid, std::move(msg)); }

std::string quoted(std::string_view s) {
  std::string out = "\"";
  out += s;
  out += '"';
  return out;
}

// An exact decimal number: value = mantissa / 10^scale.
struct Decimal {
  uint64_t mantissa = 0;
  uint64_t divisor = 1;
};

// Reads digits[.digits] at text[*pos]. At most 18 significant digits, so the
// mantissa never overflows.
bool read_decimal(std::string_view text, size_t* pos, Decimal* out) {
  size_t i = *pos;
  int digits = 0;
  Decimal d;
  while (i < text.size() && is_digit(text[i])) {
    if (++digits > 18) return false;
    d.mantissa = d.mantissa * 10 + static_cast<uint64_t>(text[i] - '0');
    ++i;
  }
  if (digits == 0) return false;
  if (i < text.size() && text[i] == '.') {
    ++i;
    int frac = 0;
    while (i < text.size() && is_digit(text[i])) {
      if (++digits > 18) return false;
      d.mantissa = d.mantissa * 10 + static_cast<uint64_t>(text[i] - '0');
      d.divisor *= 10;
      ++i;
      ++frac;
    }
    if (frac == 0) return false;
  }
  *pos = i;
  *out = d;
  return true;
}

__extension__ typedef unsigned __int128 u128;

// mantissa * unit / divisor, exactly; false on overflow or a remainder.
bool scale(const Decimal& d, uint64_t unit, uint64_t* out, bool* inexact) {
  u128 v = static_cast<u128>(d.mantissa) * unit;
  *inexact = (v % d.divisor) != 0;
  v /= d.divisor;
  if (*inexact || v > std::numeric_limits<uint64_t>::max()) return false;
  *out = static_cast<uint64_t>(v);
  return true;
}

}  // namespace

Result<Millis> parse_duration(std::string_view text) {
  const std::string what = "invalid duration " + quoted(text);
  if (text.empty()) return invalid(what + ": empty");
  // Cap: ten years, far beyond any sensible setting, keeps sums in range.
  constexpr uint64_t kMaxMs = 10ull * 365 * 24 * 3600 * 1000;
  uint64_t total = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    Decimal d;
    if (!read_decimal(text, &pos, &d)) {
      return invalid(what + ": expected a number followed by a unit (ms, s, m, h), e.g. \"2s\"");
    }
    size_t u = pos;
    while (pos < text.size() && is_alpha(text[pos])) ++pos;
    std::string_view unit = text.substr(u, pos - u);
    uint64_t unit_ms = 0;
    if (unit == "ms") unit_ms = 1;
    else if (unit == "s") unit_ms = 1000;
    else if (unit == "m") unit_ms = 60 * 1000;
    else if (unit == "h") unit_ms = 3600 * 1000;
    else if (unit.empty()) return invalid(what + ": missing unit (ms, s, m, h)");
    else return invalid(what + ": unknown unit " + quoted(unit) + " (use ms, s, m, h)");
    uint64_t ms = 0;
    bool inexact = false;
    if (!scale(d, unit_ms, &ms, &inexact)) {
      return invalid(what + (inexact ? ": not a whole number of milliseconds" : ": too large"));
    }
    total += ms;
    if (ms > kMaxMs || total > kMaxMs) return invalid(what + ": too large");
  }
  return Millis(static_cast<Millis::rep>(total));
}

Result<uint64_t> parse_size(std::string_view text) {
  const std::string what = "invalid size " + quoted(text);
  if (text.empty()) return invalid(what + ": empty");
  size_t pos = 0;
  Decimal d;
  if (!read_decimal(text, &pos, &d)) {
    return invalid(what + ": expected a number of bytes or a number with a unit, e.g. \"64KiB\"");
  }
  if (pos < text.size() && text[pos] == ' ') ++pos;
  std::string_view unit = text.substr(pos);
  struct Unit {
    std::string_view name;
    uint64_t bytes;
  };
  static constexpr std::array<Unit, 11> kUnits{{
      {"", 1},
      {"B", 1},
      {"kB", 1000},
      {"KB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000ull * 1000 * 1000},
      {"TB", 1000ull * 1000 * 1000 * 1000},
      {"KiB", 1ull << 10},
      {"MiB", 1ull << 20},
      {"GiB", 1ull << 30},
      {"TiB", 1ull << 40},
  }};
  for (const Unit& k : kUnits) {
    if (k.name != unit) continue;
    uint64_t bytes = 0;
    bool inexact = false;
    if (!scale(d, k.bytes, &bytes, &inexact)) {
      return invalid(what + (inexact ? ": not a whole number of bytes" : ": too large"));
    }
    return bytes;
  }
  return invalid(what + ": unknown unit " + quoted(unit) +
                 " (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)");
}

namespace {

bool valid_hostname(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  if (h.back() == '.') h.remove_suffix(1);  // fully qualified "example.com."
  size_t start = 0;
  while (start <= h.size()) {
    size_t dot = h.find('.', start);
    if (dot == std::string_view::npos) dot = h.size();
    std::string_view label = h.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!is_alpha(c) && !is_digit(c) && c != '-') return false;
    }
    start = dot + 1;
  }
  return true;
}

bool all_digits_and_dots(std::string_view h) {
  for (char c : h) {
    if (!is_digit(c) && c != '.') return false;
  }
  return true;
}

}  // namespace

Result<HostPort> parse_host_port(std::string_view text) {
  const std::string what = "invalid address " + quoted(text);
  if (text.empty()) return invalid(what + ": empty (expected \"host:port\")");
  std::string_view host;
  std::string_view port;
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return invalid(what + ": missing ']'");
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return invalid(what + ": missing port (expected \"[host]:port\")");
    }
    port = rest.substr(1);
    in6_addr a6{};
    std::string h(host);
    if (inet_pton(AF_INET6, h.c_str(), &a6) != 1) {
      return invalid(what + ": " + quoted(host) + " is not an IPv6 address");
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return invalid(what + ": missing port (expected \"host:port\")");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return invalid(what + ": an IPv6 address must be in brackets, e.g. \"[::1]:7422\"");
    }
    if (host.empty()) return invalid(what + ": missing host (use 0.0.0.0 or [::] for all interfaces)");
    if (all_digits_and_dots(host)) {
      in_addr a4{};
      std::string h(host);
      if (inet_pton(AF_INET, h.c_str(), &a4) != 1) {
        return invalid(what + ": " + quoted(host) + " is not an IPv4 address");
      }
    } else if (!valid_hostname(host)) {
      return invalid(what + ": " + quoted(host) + " is not a valid host name");
    }
  }
  if (port.empty() || port.size() > 5) return invalid(what + ": port must be 1..65535");
  unsigned p = 0;
  for (char c : port) {
    if (!is_digit(c)) return invalid(what + ": port must be a number 1..65535");
    p = p * 10 + static_cast<unsigned>(c - '0');
  }
  if (p < 1 || p > 65535) return invalid(what + ": port must be 1..65535");
  return HostPort{std::string(host), static_cast<uint16_t>(p)};
}

std::string format_duration(Millis d) {
  const auto ms = d.count();
  if (ms != 0 && ms % (3600 * 1000) == 0) return std::to_string(ms / (3600 * 1000)) + "h";
  if (ms != 0 && ms % (60 * 1000) == 0) return std::to_string(ms / (60 * 1000)) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string format_size(uint64_t bytes) {
  static constexpr std::array<std::pair<uint64_t, const char*>, 4> kUnits{{
      {1ull << 40, "TiB"}, {1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}}};
  for (const auto& [unit, name] : kUnits) {
    if (bytes != 0 && bytes % unit == 0) return std::to_string(bytes / unit) + name;
  }
  return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

Status check_region_name(std::string_view name) {
  const std::string what = "invalid name " + quoted(name);
  if (name.empty()) return invalid("must not be empty");
  if (name.size() > 32) return invalid(what + ": at most 32 characters");
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || is_digit(c) || (i > 0 && (c == '-' || c == '_'));
    if (!ok) {
      return invalid(what + ": use lower-case letters, digits, '-' and '_', starting with a letter or digit");
    }
  }
  return Status::ok();
}

Status check_stream_name(std::string_view name) {
  const std::string what = "invalid stream name " + quoted(name);
  if (name.empty()) return invalid("must not be empty");
  if (name.size() > 255) return invalid(what + ": at most 255 characters");
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return invalid(what + ": no spaces or control characters");
    if (c == '.' || c == '*' || c == '>' || c == '/' || c == '\\') {
      return invalid(what + ": must not contain '" + std::string(1, c) + "'");
    }
  }
  return Status::ok();
}

Status check_nats_url(std::string_view url) {
  // Shown without its password or token: config errors reach logs and terminals.
  const std::string what = "invalid NATS URL " + quoted(util::redact_userinfo(url));
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return invalid(what + ": expected \"nats://host:port\" or \"tls://host:port\"");
  std::string_view scheme = url.substr(0, sep);
  if (scheme != "nats" && scheme != "tls") {
    return invalid(what + ": scheme must be nats or tls, got " + quoted(scheme));
  }
  std::string_view rest = url.substr(sep + 3);
  size_t at = rest.rfind('@');
  if (at != std::string_view::npos) rest = rest.substr(at + 1);
  if (rest.empty() || rest.front() == ':') return invalid(what + ": missing host");
  for (char c : url) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return invalid(what + ": no spaces or control characters");
  }
  // host[:port], split as the daemon's URL parser and cnats split it (at
  // the last ':' unless the host is in brackets; no port or an empty one
  // is 4222). Host names and addresses are left to the resolver.
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return invalid(what + ": missing ']' after the IPv6 address");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return invalid(what + ": expected \":port\" after ']'");
      port = after.substr(1);
    }
  } else if (size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return invalid(what + ": missing host");
  if (!port.empty()) {
    unsigned p = 0;
    bool digits = port.size() <= 5;
    for (char c : port) {
      if (c < '0' || c > '9') digits = false;
      if (digits) p = p * 10 + static_cast<unsigned>(c - '0');
    }
    if (!digits || p == 0 || p > 65535) return invalid(what + ": port must be 1..65535, got " + quoted(port));
  }
  return Status::ok();
}

}  // namespace isthmus::config
