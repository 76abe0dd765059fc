#include "nats/url.h"

#include "util/redact.h"

namespace isthmus::nats {

Result<NatsUrl> parse_nats_url(std::string_view url) {
  NatsUrl u;
  // Errors show the URL without its password or token.
  const std::string shown = util::redact_userinfo(url);
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return Status(Code::kInvalid, "not a NATS URL: " + shown);
  std::string_view scheme = url.substr(0, sep);
  if (scheme == "tls") {
    u.tls = true;
  } else if (scheme != "nats") {
    return Status(Code::kInvalid, "NATS URL scheme must be nats or tls: " + shown);
  }
  std::string_view rest = url.substr(sep + 3);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = info.find(':');
    if (colon == std::string_view::npos) {
      u.token = std::string(info);
    } else {
      u.user = std::string(info.substr(0, colon));
      u.password = std::string(info.substr(colon + 1));
    }
  }
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return Status(Code::kInvalid, "bad IPv6 host in " + shown);
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Status(Code::kInvalid, "bad port in " + shown);
      port = after.substr(1);
    }
  } else {
    size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
    }
  }
  if (host.empty()) return Status(Code::kInvalid, "no host in " + shown);
  u.host = std::string(host);
  if (!port.empty()) {
    unsigned v = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || v > 65535) return Status(Code::kInvalid, "bad port in " + shown);
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v == 0 || v > 65535) return Status(Code::kInvalid, "bad port in " + shown);
    u.port = static_cast<uint16_t>(v);
  }
  return u;
}

std::string NatsUrl::display() const {
  const bool v6 = host.find(':') != std::string::npos;
  return std::string(tls ? "tls" : "nats") + "://" + (v6 ? "[" : "") + host + (v6 ? "]" : "") + ":" +
         std::to_string(port);
}

}  // namespace isthmus::nats
