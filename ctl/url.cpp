#include "ctl/url.h"

#include <cctype>
#include <charconv>

namespace isthmus::ctl {

namespace {

bool host_char_ok(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == '_';
}

Status bad(std::string_view text, const std::string& why) {
  return Status(Code::kInvalid, "invalid URL '" + std::string(text) + "': " + why);
}

}  // namespace

std::string Url::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

std::string Url::to_string() const { return "http://" + authority() + base_path; }

std::string Url::target(std::string_view path) const { return base_path + std::string(path); }

Result<Url> parse_url(std::string_view text) {
  std::string_view rest = text;
  auto sep = rest.find("://");
  if (sep != std::string_view::npos) {
    std::string scheme(rest.substr(0, sep));
    for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme == "https") return bad(text, "https is not supported (the API is plain HTTP)");
    if (scheme != "http") return bad(text, "unsupported scheme '" + scheme + "' (use http://)");
    rest.remove_prefix(sep + 3);
  }
  if (rest.find_first_of("?#") != std::string_view::npos) return bad(text, "a query or fragment is not allowed");

  Url url;
  auto slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = rest.substr(slash);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    url.base_path = std::string(path);
  }
  if (hostport.find('@') != std::string_view::npos) return bad(text, "user information is not allowed");

  std::string_view port_text;
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return bad(text, "missing ']' after an IPv6 address");
    url.host = std::string(hostport.substr(1, close - 1));
    if (url.host.empty()) return bad(text, "empty host");
    for (char c : url.host) {
      if (std::isxdigit(static_cast<unsigned char>(c)) == 0 && c != ':' && c != '.') {
        return bad(text, "invalid IPv6 address '" + url.host + "'");
      }
    }
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad(text, "unexpected text after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return bad(text, "empty port");
    }
  } else {
    auto colon = hostport.find(':');
    if (colon != std::string_view::npos && hostport.find(':', colon + 1) != std::string_view::npos) {
      return bad(text, "an IPv6 address must be in brackets, e.g. http://[::1]:7480");
    }
    url.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = hostport.substr(colon + 1);
      if (port_text.empty()) return bad(text, "empty port");
    }
    if (url.host.empty()) return bad(text, "empty host");
    for (char c : url.host) {
      if (!host_char_ok(c)) return bad(text, "invalid character in host '" + url.host + "'");
    }
  }
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || value < 1 || value > 65535) {
      return bad(text, "port must be a number in 1..65535");
    }
    url.port = static_cast<uint16_t>(value);
  }
  return url;
}

}  // namespace isthmus::ctl
