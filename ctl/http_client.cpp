#include "ctl/http_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "isthmus_build.h"

namespace isthmus::ctl {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxResponseBytes = 64u << 20;  // far above anything the API sends

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Status invalid(const std::string& why) { return Status(Code::kInvalid, "invalid HTTP response: " + why); }

// Decodes a chunked body starting at `data`. kIncomplete until the last
// chunk and the trailers' empty line have arrived.
Result<ParseState> dechunk(std::string_view data, std::string& body) {
  body.clear();
  size_t pos = 0;
  for (;;) {
    auto eol = data.find("\r\n", pos);
    if (eol == std::string_view::npos) return ParseState::kIncomplete;
    std::string_view line = data.substr(pos, eol - pos);
    line = line.substr(0, line.find(';'));  // chunk extensions
    line = trim(line);
    size_t size = 0;
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), size, 16);
    if (line.empty() || ec != std::errc() || p != line.data() + line.size()) return invalid("bad chunk size");
    pos = eol + 2;
    if (size == 0) {
      // Trailers end with an empty line.
      for (;;) {
        auto end = data.find("\r\n", pos);
        if (end == std::string_view::npos) return ParseState::kIncomplete;
        if (end == pos) return ParseState::kComplete;
        pos = end + 2;
      }
    }
    if (size > kMaxResponseBytes || data.size() - pos < size + 2) return ParseState::kIncomplete;
    body.append(data.substr(pos, size));
    if (data.substr(pos + size, 2) != "\r\n") return invalid("chunk not followed by CRLF");
    pos += size + 2;
  }
}

std::string errno_text(int e) { return std::strerror(e); }

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits for `events` on fd until the deadline. OK, kTimeout, kUnavailable
// (interrupted by a signal) or kIo.
Status wait_for(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  int rc = ::poll(&p, 1, remaining_ms(deadline));
  if (rc > 0) return Status::ok();
  if (rc == 0) return Status(Code::kTimeout, "timed out");
  if (errno == EINTR) return Status(Code::kUnavailable, "interrupted");
  return Status(Code::kIo, errno_text(errno));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Connects to one address before the deadline; returns the socket or -1
// with `err` set.
int connect_one(const addrinfo* ai, Clock::time_point deadline, Status& err) {
  int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) {
    err = Status(Code::kIo, errno_text(errno));
    return -1;
  }
  if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) return fd;
  if (errno != EINPROGRESS) {
    err = Status(Code::kIo, errno_text(errno));
    ::close(fd);
    return -1;
  }
  Status st = wait_for(fd, POLLOUT, deadline);
  if (!st) {
    err = st;
    ::close(fd);
    return -1;
  }
  int so_error = 0;
  socklen_t len = sizeof(so_error);
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) {
    err = Status(Code::kIo, errno_text(so_error));
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return v;
  }
  return {};
}

Result<ParseState> parse_response(std::string_view data, bool eof, HttpResponse& out) {
  auto head_end = data.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (data.size() >= 5 && data.substr(0, 5) != "HTTP/") return invalid("does not start with HTTP/");
    if (eof) return invalid("connection closed before the end of the headers");
    return ParseState::kIncomplete;
  }
  out = HttpResponse{};
  std::string_view head = data.substr(0, head_end);
  auto line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  // HTTP/1.x SP 3DIGIT SP reason
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ') {
    return invalid("bad status line '" + std::string(status_line) + "'");
  }
  std::string_view code = status_line.substr(9, 3);
  auto [p, ec] = std::from_chars(code.data(), code.data() + code.size(), out.status);
  if (ec != std::errc() || p != code.data() + code.size() || out.status < 100 || out.status > 599 ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    return invalid("bad status line '" + std::string(status_line) + "'");
  }
  out.reason = status_line.size() > 13 ? std::string(status_line.substr(13)) : "";

  size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    auto end = head.find("\r\n", pos);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(pos, end - pos);
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return invalid("bad header line '" + std::string(line) + "'");
    out.headers.emplace_back(std::string(line.substr(0, colon)), std::string(trim(line.substr(colon + 1))));
    pos = end + 2;
  }

  std::string_view body = data.substr(head_end + 4);
  if (out.status / 100 == 1 || out.status == 204 || out.status == 304) return ParseState::kComplete;
  std::string te = out.header("Transfer-Encoding");
  if (!te.empty()) {
    if (!iequals(te, "chunked")) return invalid("unsupported Transfer-Encoding '" + te + "'");
    auto r = dechunk(body, out.body);
    if (!r) return r.status();
    if (*r == ParseState::kIncomplete && eof) return invalid("connection closed inside a chunked body");
    return *r;
  }
  std::string cl = out.header("Content-Length");
  if (!cl.empty()) {
    size_t n = 0;
    auto [q, ec2] = std::from_chars(cl.data(), cl.data() + cl.size(), n);
    if (ec2 != std::errc() || q != cl.data() + cl.size()) return invalid("bad Content-Length '" + cl + "'");
    if (body.size() < n) {
      if (eof) {
        return invalid("connection closed after " + std::to_string(body.size()) + " of " + std::to_string(n) +
                       " body bytes");
      }
      return ParseState::kIncomplete;
    }
    out.body = std::string(body.substr(0, n));
    return ParseState::kComplete;
  }
  // Neither: the body ends with the connection.
  if (!eof) return ParseState::kIncomplete;
  out.body = std::string(body);
  return ParseState::kComplete;
}

Result<HttpResponse> http_get(const Url& url, std::string_view path, std::chrono::milliseconds timeout) {
  return http_request(url, "GET", path, "", timeout);
}

Result<HttpResponse> http_request(const Url& url, std::string_view method, std::string_view path,
                                  std::string_view body, std::chrono::milliseconds timeout) {
  const std::string where = url.to_string();
  auto fail = [&](const Status& st, const std::string& what) {
    if (st.code() == Code::kTimeout) {
      return Status(Code::kTimeout, "no answer from " + where + " within " + std::to_string(timeout.count()) +
                                        " ms (" + what + ")");
    }
    return Status(st.code(), "cannot reach " + where + ": " + what + ": " + st.message());
  };
  const auto deadline = Clock::now() + timeout;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(url.port);
  if (int rc = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return Status(Code::kIo, "cannot reach " + where + ": cannot resolve '" + url.host + "': " + gai_strerror(rc));
  }
  Status last(Code::kIo, "no address");
  int raw = -1;
  for (addrinfo* ai = res; ai != nullptr && raw < 0; ai = ai->ai_next) {
    raw = connect_one(ai, deadline, last);
    if (raw < 0 && (last.code() == Code::kTimeout || last.code() == Code::kUnavailable)) break;
  }
  ::freeaddrinfo(res);
  if (raw < 0) return fail(last, "connect");
  Fd fd(raw);

  std::string req = std::string(method) + " " + url.target(path) + " HTTP/1.1\r\nHost: " + url.authority() +
                    "\r\nUser-Agent: isthmusctl/" ISTHMUS_VERSION "\r\nAccept: application/json\r\n";
  if (method != "GET" && method != "HEAD") {
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "Connection: close\r\n\r\n";
  req += body;
  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = ::send(fd.get(), req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Status st = wait_for(fd.get(), POLLOUT, deadline); !st) return fail(st, "send");
      continue;
    }
    return fail(Status(Code::kIo, errno_text(errno)), "send");
  }

  std::string data;
  HttpResponse resp;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Status st = wait_for(fd.get(), POLLIN, deadline); !st) return fail(st, "receive");
      continue;
    }
    if (n < 0) return fail(Status(Code::kIo, errno_text(errno)), "receive");
    bool eof = n == 0;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > kMaxResponseBytes) return Status(Code::kInvalid, where + ": response too large");
    auto r = parse_response(data, eof, resp);
    if (!r) return Status(Code::kInvalid, where + ": " + r.status().message());
    if (*r == ParseState::kComplete) return resp;
    if (eof) return Status(Code::kInvalid, where + ": connection closed before a complete response");
  }
}

}  // namespace isthmus::ctl
