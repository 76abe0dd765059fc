#include "nats/permission_violation.h"

#include <cstdint>

namespace isthmus::nats {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// n hex digits at in[at...] into v.
bool read_hex(std::string_view in, size_t at, size_t n, uint32_t& v) {
  if (at + n > in.size()) return false;
  v = 0;
  for (size_t i = 0; i < n; ++i) {
    int d = hex_value(in[at + i]);
    if (d < 0) return false;
    v = v * 16 + static_cast<uint32_t>(d);
  }
  return true;
}

bool append_utf8(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return true;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

}  // namespace

Result<std::string> go_unquote_prefix(std::string_view in, size_t& used) {
  const Status bad(Code::kInvalid, "not a quoted string");
  if (in.empty() || in.front() != '"') return bad;
  std::string out;
  size_t i = 1;
  while (i < in.size()) {
    char c = in[i];
    if (c == '"') {
      used = i + 1;
      return out;
    }
    if (c != '\\') {
      out.push_back(c);
      ++i;
      continue;
    }
    if (i + 1 >= in.size()) return bad;
    char e = in[i + 1];
    i += 2;
    uint32_t v = 0;
    switch (e) {
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'v': out.push_back('\v'); break;
      case '\\':
      case '"':
      case '\'':
        out.push_back(e);
        break;
      case 'x':  // one byte (invalid UTF-8 or a control character)
        if (!read_hex(in, i, 2, v)) return bad;
        out.push_back(static_cast<char>(v));
        i += 2;
        break;
      case 'u':
      case 'U': {
        const size_t n = e == 'u' ? 4 : 8;
        if (!read_hex(in, i, n, v) || !append_utf8(out, v)) return bad;
        i += n;
        break;
      }
      default:
        if (e >= '0' && e <= '7') {  // \NNN octal, one byte (Go accepts it; %q does not write it)
          if (i + 2 > in.size()) return bad;
          v = static_cast<uint32_t>(e - '0');
          for (size_t k = 0; k < 2; ++k) {
            char o = in[i + k];
            if (o < '0' || o > '7') return bad;
            v = v * 8 + static_cast<uint32_t>(o - '0');
          }
          if (v > 255) return bad;
          out.push_back(static_cast<char>(v));
          i += 2;
          break;
        }
        return bad;
    }
  }
  return bad;  // no closing quote
}

Result<PermissionViolation> parse_permission_violation(std::string_view text) {
  static constexpr std::string_view kPublish = "Permissions Violation for Publish to ";
  static constexpr std::string_view kReply = "Permissions Violation for Publish with Reply of ";
  static constexpr std::string_view kSubscription = "Permissions Violation for Subscription to ";
  static constexpr std::string_view kQueue = " using queue ";
  PermissionViolation v;
  std::string_view rest;
  if (starts_with(text, kPublish)) {
    v.kind = PermissionViolation::Kind::kPublish;
    rest = text.substr(kPublish.size());
  } else if (starts_with(text, kReply)) {
    v.kind = PermissionViolation::Kind::kReply;
    rest = text.substr(kReply.size());
  } else if (starts_with(text, kSubscription)) {
    v.kind = PermissionViolation::Kind::kSubscription;
    rest = text.substr(kSubscription.size());
  } else {
    return Status(Code::kInvalid, "not a permissions violation: " + std::string(text));
  }
  size_t used = 0;
  auto subject = go_unquote_prefix(rest, used);
  if (!subject || subject->empty()) {
    return Status(Code::kInvalid, "permissions violation without a readable subject: " + std::string(text));
  }
  v.subject = std::move(*subject);
  rest.remove_prefix(used);
  if (v.kind == PermissionViolation::Kind::kSubscription && starts_with(rest, kQueue)) {
    auto queue = go_unquote_prefix(rest.substr(kQueue.size()), used);
    if (!queue) return Status(Code::kInvalid, "permissions violation with an unreadable queue: " + std::string(text));
    v.queue = std::move(*queue);
  }
  return v;
}

}  // namespace isthmus::nats
