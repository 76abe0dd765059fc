#include "http/request_parser.h"

#include <llhttp.h>

#include <algorithm>
#include <deque>

namespace isthmus::http {

namespace {

bool is_ows(char c) { return c == ' ' || c == '\t'; }

// Bytes a header value may not contain even though llhttp lets some through:
// control characters other than HTAB (NUL in particular) and DEL.
bool bad_value_byte(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

// RFC 9110 token characters; llhttp's loose mode lets e.g. spaces through.
bool token_byte(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

}  // namespace

struct RequestParser::Impl {
  explicit Impl(ParserLimits l) : limits(l) {
    llhttp_settings_init(&settings);
    settings.on_message_begin = &Impl::on_message_begin;
    settings.on_url = &Impl::on_url;
    settings.on_header_field = &Impl::on_header_field;
    settings.on_header_field_complete = &Impl::on_header_field_complete;
    settings.on_header_value = &Impl::on_header_value;
    settings.on_header_value_complete = &Impl::on_header_value_complete;
    settings.on_headers_complete = &Impl::on_headers_complete;
    settings.on_body = &Impl::on_body;
    settings.on_message_complete = &Impl::on_message_complete;
    settings.on_chunk_header = &Impl::on_chunk_header;
    llhttp_init(&parser, HTTP_REQUEST, &settings);
    parser.data = this;
  }

  static Impl& self(llhttp_t* p) { return *static_cast<Impl*>(p->data); }

  // Records the first error; later ones are consequences of it.
  void fail(int status, std::string reason) {
    if (error.status != 0) return;
    error.status = status;
    error.reason = std::move(reason);
  }

  static int on_message_begin(llhttp_t* p) {
    Impl& s = self(p);
    s.in_message = true;
    s.headers_done = false;
    s.expect_continue = false;
    s.chunk_left = 0;
    s.crlf_due = false;
    s.cur = Request{};
    s.field.clear();
    s.value.clear();
    return 0;
  }

  // Data callbacks only ever see bytes of the header block, which feed()
  // caps at max_header_bytes per request, so appends here are bounded.
  static int on_url(llhttp_t* p, const char* at, size_t n) {
    self(p).cur.target.append(at, n);
    return 0;
  }

  static int on_header_field(llhttp_t* p, const char* at, size_t n) {
    Impl& s = self(p);
    for (size_t i = 0; i < n; ++i) {
      if (!token_byte(static_cast<unsigned char>(at[i]))) {
        s.fail(400, "invalid character in header name");
        return HPE_USER;
      }
    }
    s.field.append(at, n);
    return 0;
  }

  static int on_header_field_complete(llhttp_t* p) {
    Impl& s = self(p);
    if (s.field.empty()) {
      s.fail(400, "empty header name");
      return HPE_USER;
    }
    if (s.cur.headers.size() >= s.limits.max_header_count) {
      s.fail(431, "too many header fields");
      return HPE_USER;
    }
    return 0;
  }

  static int on_header_value(llhttp_t* p, const char* at, size_t n) {
    Impl& s = self(p);
    for (size_t i = 0; i < n; ++i) {
      if (bad_value_byte(static_cast<unsigned char>(at[i]))) {
        s.fail(400, "control character in header value");
        return HPE_USER;
      }
    }
    s.value.append(at, n);
    return 0;
  }

  static int on_header_value_complete(llhttp_t* p) {
    Impl& s = self(p);
    while (!s.value.empty() && is_ows(s.value.back())) s.value.pop_back();
    s.cur.headers.add(std::move(s.field), std::move(s.value));
    s.field.clear();
    s.value.clear();
    return 0;
  }

  static int on_headers_complete(llhttp_t* p) {
    Impl& s = self(p);
    s.headers_done = true;
    ++s.headers_seen;
    Request& r = s.cur;
    auto method = static_cast<llhttp_method_t>(llhttp_get_method(p));
    r.method = llhttp_method_name(method);
    r.http_major = llhttp_get_http_major(p);
    r.http_minor = llhttp_get_http_minor(p);
    if (r.http_major != 1 || r.http_minor > 1) {
      s.fail(505, "HTTP version not supported");
      return -1;
    }
    if (method == HTTP_CONNECT) {
      s.fail(501, "CONNECT is not supported");
      return -1;
    }
    if ((p->flags & F_UPGRADE) != 0 && (p->flags & F_CONNECTION_UPGRADE) != 0) {
      s.fail(501, "protocol upgrade is not supported");
      return -1;
    }
    if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > s.limits.max_body_bytes) {
      s.fail(413, "request body too large");
      return -1;
    }
    if (!split_target(r)) {
      s.fail(400, "invalid request target");
      return -1;
    }
    r.keep_alive = llhttp_should_keep_alive(p) != 0;
    bool has_body = (p->flags & F_CHUNKED) != 0 ||
                    ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > 0);
    s.expect_continue = has_body && iequals(r.headers.get("Expect"), "100-continue");
    return 0;
  }

  static int on_body(llhttp_t* p, const char* at, size_t n) {
    Impl& s = self(p);
    s.expect_continue = false;
    if (n > s.limits.max_body_bytes - s.cur.body.size()) {
      s.fail(413, "request body too large");
      return HPE_USER;
    }
    s.cur.body.append(at, n);
    if ((p->flags & F_CHUNKED) != 0 && s.chunk_left > 0) {
      s.chunk_left -= std::min<uint64_t>(n, s.chunk_left);
      if (s.chunk_left == 0) {
        s.crlf_seen = 0;
        s.crlf_due = true;
        const char* after = at + n;
        if (!s.check_chunk_crlf({after, static_cast<size_t>(s.piece_end - after)})) {
          return HPE_USER;
        }
      }
    }
    return 0;
  }

  static int on_chunk_header(llhttp_t* p) {
    self(p).chunk_left = p->content_length;
    return 0;
  }

  // llhttp built without LLHTTP_STRICT_MODE skips the two bytes after chunk
  // data unchecked; a smuggling vector, so check they are CRLF here. `next`
  // is what follows the data in the current piece; the rest is checked at
  // the start of the next piece. Returns false on error.
  bool check_chunk_crlf(std::string_view next) {
    size_t i = 0;
    while (crlf_due && i < next.size()) {
      if (next[i] != "\r\n"[crlf_seen]) {
        fail(400, "malformed request: chunk data not followed by CRLF");
        return false;
      }
      ++i;
      if (++crlf_seen == 2) crlf_due = false;
    }
    return true;
  }

  static int on_message_complete(llhttp_t* p) {
    Impl& s = self(p);
    s.in_message = false;
    s.headers_done = false;
    s.expect_continue = false;
    s.header_raw = 0;
    if (!s.cur.keep_alive) s.closed = true;
    s.ready.push_back(std::move(s.cur));
    s.cur = Request{};
    // Stop here so feed() knows exactly where the next request starts and
    // can count its header bytes from there.
    return HPE_PAUSED;
  }

  // origin-form "/p?q" or absolute-form "http://host/p?q"; "*" for OPTIONS.
  static bool split_target(Request& r) {
    std::string_view t = r.target;
    if (t == "*") {
      // assign(1, c), not = "*": for a one-character literal, GCC 12 at -O3 reports a false -Wrestrict.
      r.path.assign(1, '*');
      return r.method == "OPTIONS";
    }
    for (std::string_view scheme : {"http://", "https://"}) {
      if (t.size() >= scheme.size() && iequals(t.substr(0, scheme.size()), scheme)) {
        size_t slash = t.find('/', scheme.size());
        size_t q = t.find('?', scheme.size());
        size_t start = std::min(slash, q);
        t = start == std::string_view::npos ? std::string_view("/") : t.substr(start);
        if (!t.empty() && t.front() == '?') {
          r.path.assign(1, '/');
          r.query = std::string(t.substr(1));
          return true;
        }
        break;
      }
    }
    if (t.empty() || t.front() != '/') return false;
    size_t hash = t.find('#');
    if (hash != std::string_view::npos) t = t.substr(0, hash);
    size_t q = t.find('?');
    r.path = std::string(t.substr(0, q));
    if (q != std::string_view::npos) r.query = std::string(t.substr(q + 1));
    return true;
  }

  bool execute(std::string_view data) {
    while (!data.empty() && !closed) {
      // While a header block is being read, hand llhttp no more than the
      // header budget left, so the limit holds exactly and no buffer grows
      // past it whatever the split.
      bool counting = !headers_done;
      size_t n = data.size();
      if (counting) n = std::min(n, limits.max_header_bytes - header_raw);
      uint64_t seen_before = headers_seen;
      if (!check_chunk_crlf(data.substr(0, n))) return false;
      piece_end = data.data() + n;
      llhttp_errno_t err = llhttp_execute(&parser, data.data(), n);
      size_t used = n;
      if (err == HPE_PAUSED) {
        used = static_cast<size_t>(llhttp_get_error_pos(&parser) - data.data());
        llhttp_resume(&parser);
      } else if (err != HPE_OK) {
        if (error.status == 0) {
          const char* why = llhttp_get_error_reason(&parser);
          fail(400, std::string("malformed request: ") +
                        (why && *why ? why : llhttp_errno_name(err)));
        }
        return false;
      }
      if (counting && headers_seen == seen_before) {
        header_raw += used;
        if (header_raw >= limits.max_header_bytes) {
          fail(431, "request header fields too large");
          return false;
        }
      }
      data.remove_prefix(used);
    }
    return true;
  }

  ParserLimits limits;
  llhttp_settings_t settings{};
  llhttp_t parser{};

  Request cur;
  std::string field;
  std::string value;
  bool in_message = false;
  bool headers_done = false;
  bool expect_continue = false;
  bool closed = false;
  size_t header_raw = 0;     // bytes of the current header block so far
  uint64_t chunk_left = 0;   // data bytes of the current chunk not seen yet
  bool crlf_due = false;     // the CRLF after chunk data is not fully seen
  int crlf_seen = 0;
  const char* piece_end = nullptr;  // end of the bytes given to llhttp_execute
  uint64_t headers_seen = 0;  // header blocks completed, ever
  std::deque<Request> ready;
  ParseError error;
};

RequestParser::RequestParser(ParserLimits limits) : impl_(std::make_unique<Impl>(limits)) {
  if (impl_->limits.max_header_bytes == 0) impl_->limits.max_header_bytes = 1;
}

RequestParser::~RequestParser() = default;

bool RequestParser::feed(std::string_view data) {
  if (failed()) return false;
  return impl_->execute(data);
}

bool RequestParser::finish() {
  if (failed()) return false;
  if (impl_->in_message) {
    impl_->fail(400, "connection closed in the middle of a request");
    return false;
  }
  return true;
}

bool RequestParser::has_request() const { return !impl_->ready.empty(); }
size_t RequestParser::pending() const { return impl_->ready.size(); }

std::optional<Request> RequestParser::next() {
  if (impl_->ready.empty()) return std::nullopt;
  Request r = std::move(impl_->ready.front());
  impl_->ready.pop_front();
  return r;
}

bool RequestParser::in_progress() const { return impl_->in_message; }
bool RequestParser::headers_complete() const { return impl_->in_message && impl_->headers_done; }

bool RequestParser::take_expect_continue() {
  bool v = impl_->expect_continue;
  impl_->expect_continue = false;
  return v;
}

bool RequestParser::failed() const { return impl_->error.status != 0; }
const ParseError& RequestParser::error() const { return impl_->error; }
bool RequestParser::closed() const { return impl_->closed; }

}  // namespace isthmus::http
