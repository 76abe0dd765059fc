#include "nats/wire.h"

#include <charconv>
#include <cstring>

namespace isthmus::nats::wire {
namespace {

Status protocol_error(std::string what) { return Status(Code::kInvalid, "NATS protocol: " + std::move(what)); }

bool is_space(char c) { return c == ' ' || c == '\t'; }

// Splits a control line's arguments at spaces/tabs (at most `max` of them;
// returns how many, or max + 1 if there are more).
size_t split_args(std::string_view s, std::string_view* out, size_t max) {
  size_t n = 0;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i == s.size()) break;
    size_t start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (n == max) return max + 1;
    out[n++] = s.substr(start, i - start);
  }
  return n;
}

bool parse_size(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool op_is(std::string_view name, std::string_view want) {
  if (name.size() != want.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != want[i]) return false;
  }
  return true;
}

void append_uint(std::string& out, uint64_t v) {
  char b[24];
  auto r = std::to_chars(b, b + sizeof(b), v);
  out.append(b, static_cast<size_t>(r.ptr - b));
}

// Parses one op from d[0..n). Returns the bytes it took, 0 when incomplete.
Result<size_t> parse_one(const char* d, size_t n, size_t max_message, ServerOp& op) {
  const void* nlp = std::memchr(d, '\n', std::min(n, kMaxControlLine + 2));
  if (nlp == nullptr) {
    if (n > kMaxControlLine + 1) return protocol_error("control line longer than " + std::to_string(kMaxControlLine));
    return size_t{0};
  }
  const size_t nl = static_cast<size_t>(static_cast<const char*>(nlp) - d);
  std::string_view line(d, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t sp = 0;
  while (sp < line.size() && !is_space(line[sp])) ++sp;
  std::string_view name = line.substr(0, sp);
  std::string_view rest = line.substr(sp);
  while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
  op = ServerOp{};
  const size_t line_bytes = nl + 1;

  if (op_is(name, "MSG") || op_is(name, "HMSG")) {
    const bool hmsg = name.size() == 4;
    std::string_view a[5];
    size_t na = split_args(rest, a, 5);
    size_t want_min = hmsg ? 4 : 3;
    if (na < want_min || na > want_min + 1) return protocol_error("malformed " + std::string(name) + " line");
    uint64_t hdr = 0, total = 0;
    const size_t sizes_at = na - (hmsg ? 2 : 1);
    if (!parse_size(a[na - 1], total) || (hmsg && !parse_size(a[na - 2], hdr)) || hdr > total) {
      return protocol_error("bad size in " + std::string(name) + " line");
    }
    if (!parse_size(a[1], op.sid)) return protocol_error("bad subscription id in " + std::string(name) + " line");
    if (total > max_message) {
      return Status(Code::kTooLarge, "NATS protocol: a message of " + std::to_string(total) +
                                         " bytes, more than the " + std::to_string(max_message) + " allowed");
    }
    if (n < line_bytes + total + 2) return size_t{0};
    const char* body = d + line_bytes;
    if (body[total] != '\r' || body[total + 1] != '\n') return protocol_error("message not followed by CRLF");
    op.kind = ServerOp::Kind::kMsg;
    op.subject = a[0];
    op.reply = sizes_at == 3 ? a[2] : std::string_view();
    op.headers = std::string_view(body, hdr);
    op.payload = std::string_view(body + hdr, total - hdr);
    return line_bytes + total + 2;
  }
  if (op_is(name, "PING")) {
    op.kind = ServerOp::Kind::kPing;
  } else if (op_is(name, "PONG")) {
    op.kind = ServerOp::Kind::kPong;
  } else if (op_is(name, "+OK")) {
    op.kind = ServerOp::Kind::kOk;
  } else if (op_is(name, "-ERR")) {
    op.kind = ServerOp::Kind::kErr;
    if (rest.size() >= 2 && rest.front() == '\'' && rest.back() == '\'') rest = rest.substr(1, rest.size() - 2);
    op.text = rest;
  } else if (op_is(name, "INFO")) {
    op.kind = ServerOp::Kind::kInfo;
    op.text = rest;
  } else {
    std::string shown(name.substr(0, 16));
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    }
    return protocol_error("unknown operation '" + shown + "'");
  }
  return line_bytes;
}

}  // namespace

Status Reader::feed(std::span<const uint8_t> in, const OnOp& on_op) {
  if (failed_) return protocol_error("connection already failed");
  // Parse straight from the input when nothing is held; hold the rest.
  const char* d;
  size_t n;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
    d = reinterpret_cast<const char*>(in.data());
    n = in.size();
  } else {
    buf_.insert(buf_.end(), in.begin(), in.end());
    d = reinterpret_cast<const char*>(buf_.data()) + pos_;
    n = buf_.size() - pos_;
  }
  const bool from_input = buf_.empty();
  size_t used = 0;
  Status st;
  ServerOp op;
  while (used < n) {
    auto r = parse_one(d + used, n - used, max_message_, op);
    if (!r) {
      failed_ = true;
      return r.status();
    }
    if (*r == 0) break;
    used += *r;
    st = on_op(op);
    if (!st) break;
  }
  if (from_input) {
    buf_.assign(in.begin() + static_cast<std::ptrdiff_t>(used), in.end());
    pos_ = 0;
  } else {
    pos_ += used;
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    } else if (pos_ > 64 * 1024) {
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
      pos_ = 0;
    }
  }
  return st;
}

bool valid_subject(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool subject_matches(std::string_view pattern, std::string_view subject) {
  for (;;) {
    size_t pd = pattern.find('.');
    size_t sd = subject.find('.');
    std::string_view pt = pattern.substr(0, pd);
    std::string_view st = subject.substr(0, sd);
    if (pt == ">") return !subject.empty() && pd == std::string_view::npos;
    if (st.empty() || (pt != "*" && pt != st)) return false;
    if (pd == std::string_view::npos || sd == std::string_view::npos) {
      return pd == std::string_view::npos && sd == std::string_view::npos;
    }
    pattern.remove_prefix(pd + 1);
    subject.remove_prefix(sd + 1);
  }
}

bool valid_header_key(std::string_view k) {
  if (k.empty()) return false;
  for (char c : k) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f || c == ':') return false;
  }
  return true;
}

bool valid_header_value(std::string_view v) {
  return v.find_first_of("\r\n") == std::string_view::npos;
}

void append_connect(std::string& out, std::string_view json) {
  out.append("CONNECT ");
  out.append(json);
  out.append("\r\n");
}

void append_sub(std::string& out, std::string_view subject, uint64_t sid) {
  out.append("SUB ");
  out.append(subject);
  out.push_back(' ');
  append_uint(out, sid);
  out.append("\r\n");
}

void append_unsub(std::string& out, uint64_t sid) {
  out.append("UNSUB ");
  append_uint(out, sid);
  out.append("\r\n");
}

void append_pub(std::string& out, std::string_view subject, std::string_view reply, std::string_view payload) {
  out.append("PUB ");
  out.append(subject);
  out.push_back(' ');
  if (!reply.empty()) {
    out.append(reply);
    out.push_back(' ');
  }
  append_uint(out, payload.size());
  out.append("\r\n");
  out.append(payload);
  out.append("\r\n");
}

void append_hpub(std::string& out, std::string_view subject, std::string_view reply, std::string_view headers,
                 std::string_view payload) {
  out.append("HPUB ");
  out.append(subject);
  out.push_back(' ');
  if (!reply.empty()) {
    out.append(reply);
    out.push_back(' ');
  }
  append_uint(out, headers.size());
  out.push_back(' ');
  append_uint(out, headers.size() + payload.size());
  out.append("\r\n");
  out.append(headers);
  out.append(payload);
  out.append("\r\n");
}

void append_ping(std::string& out) { out.append("PING\r\n"); }
void append_pong(std::string& out) { out.append("PONG\r\n"); }

void HeaderBlock::add(std::string_view key, std::string_view value) {
  buf_.append(key);
  buf_.append(": ");
  buf_.append(value);
  buf_.append("\r\n");
}

Result<HeaderView> parse_headers(std::string_view block,
                                 const std::function<void(std::string_view, std::string_view)>& each) {
  constexpr std::string_view kVersion = "NATS/1.0";
  if (block.substr(0, kVersion.size()) != kVersion) return protocol_error("header block without NATS/1.0");
  size_t eol = block.find("\r\n");
  if (eol == std::string_view::npos) return protocol_error("header block without CRLF");
  HeaderView hv;
  std::string_view first = block.substr(kVersion.size(), eol - kVersion.size());
  while (!first.empty() && is_space(first.front())) first.remove_prefix(1);
  size_t sp = 0;
  while (sp < first.size() && !is_space(first[sp])) ++sp;
  hv.status = first.substr(0, sp);
  std::string_view desc = first.substr(sp);
  while (!desc.empty() && is_space(desc.front())) desc.remove_prefix(1);
  hv.description = desc;
  size_t p = eol + 2;
  while (p < block.size()) {
    size_t e = block.find("\r\n", p);
    if (e == std::string_view::npos) return protocol_error("header line without CRLF");
    if (e == p) break;  // the empty line that ends the block
    std::string_view line = block.substr(p, e - p);
    p = e + 2;
    size_t colon = line.find(':');
    std::string_view key = colon == std::string_view::npos ? std::string_view() : line.substr(0, colon);
    while (!key.empty() && is_space(key.front())) key.remove_prefix(1);
    while (!key.empty() && is_space(key.back())) key.remove_suffix(1);
    if (key.empty()) {
      ++hv.malformed;
      continue;
    }
    std::string_view value = line.substr(colon + 1);
    // The separator's spaces go; the value's own trailing bytes stay.
    while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
    each(key, value);
  }
  return hv;
}

}  // namespace isthmus::nats::wire
