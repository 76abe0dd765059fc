#include "http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <strings.h>

#include "util.h"

namespace harness {

std::string HttpResponse::header(const std::string& name) const {
  for (const auto& [k, v] : headers)
    if (::strcasecmp(k.c_str(), name.c_str()) == 0) return v;
  return "";
}

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

[[noreturn]] void fail(const std::string& what, const std::string& host, uint16_t port, const std::string& path) {
  throw std::runtime_error("http " + host + ":" + std::to_string(port) + path + ": " + what);
}

std::string decode_chunked(const std::string& in) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t eol = in.find("\r\n", pos);
    if (eol == std::string::npos) throw std::runtime_error("bad chunked body");
    size_t len = std::stoul(in.substr(pos, eol - pos), nullptr, 16);
    pos = eol + 2;
    if (len == 0) return out;
    if (pos + len > in.size()) throw std::runtime_error("truncated chunk");
    out.append(in, pos, len);
    pos += len + 2;
  }
}

}  // namespace

HttpResponse http_request(uint16_t port, const std::string& method, const std::string& path,
                          const std::string& body, const std::string& content_type,
                          std::chrono::milliseconds timeout) {
  return http_request_at("127.0.0.1", port, method, path, body, content_type, timeout);
}

HttpResponse http_request_at(const std::string& host, uint16_t port, const std::string& method,
                             const std::string& path, const std::string& body, const std::string& content_type,
                             std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  sockaddr_storage ss{};
  socklen_t ss_len = 0;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    ss_len = sizeof *a4;
  } else if (::inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    ss_len = sizeof *a6;
  } else {
    fail("not an IP address", host, port, path);
  }
  Fd s;
  s.fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s.fd < 0) fail(std::string("socket: ") + std::strerror(errno), host, port, path);
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&ss), ss_len) != 0) {
    if (errno != EINPROGRESS) fail(std::string("connect: ") + std::strerror(errno), host, port, path);
    pollfd p{s.fd, POLLOUT, 0};
    if (::poll(&p, 1, ms_left(deadline)) <= 0) fail("connect timed out", host, port, path);
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) fail(std::string("connect: ") + std::strerror(err), host, port, path);
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                    std::to_string(port) + "\r\nConnection: close\r\nUser-Agent: isthmus-it\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") {
    if (!content_type.empty()) req += "Content-Type: " + content_type + "\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = ::send(s.fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{s.fd, POLLOUT, 0};
      if (::poll(&p, 1, ms_left(deadline)) <= 0) fail("send timed out", host, port, path);
      continue;
    }
    fail(std::string("send: ") + std::strerror(errno), host, port, path);
  }
  std::string raw;
  for (;;) {
    char buf[16384];
    ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n > 0) {
      raw.append(buf, static_cast<size_t>(n));
      // Stop early once a Content-Length body is complete (server may keep
      // the connection open despite Connection: close).
      size_t hdr_end = raw.find("\r\n\r\n");
      if (hdr_end != std::string::npos) {
        std::string head = raw.substr(0, hdr_end);
        for (auto& c : head) c = static_cast<char>(::tolower(static_cast<unsigned char>(c)));
        size_t cl = head.find("\r\ncontent-length:");
        if (cl != std::string::npos) {
          size_t len = std::stoul(head.substr(cl + 17));
          if (raw.size() >= hdr_end + 4 + len) break;
        }
      }
      continue;
    }
    if (n == 0) break;
    if (errno == EAGAIN || errno == EINTR) {
      pollfd p{s.fd, POLLIN, 0};
      if (::poll(&p, 1, ms_left(deadline)) <= 0) fail("response timed out", host, port, path);
      continue;
    }
    if (errno == ECONNRESET && !raw.empty()) break;
    fail(std::string("recv: ") + std::strerror(errno), host, port, path);
  }
  size_t hdr_end = raw.find("\r\n\r\n");
  if (hdr_end == std::string::npos)
    fail("incomplete response (" + std::to_string(raw.size()) + " bytes)", host, port, path);
  HttpResponse resp;
  std::string head = raw.substr(0, hdr_end);
  size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12)
    fail("bad status line: " + status_line, host, port, path);
  resp.status = std::atoi(status_line.c_str() + 9);
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string::npos) e = head.size();
    std::string line = head.substr(pos, e - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string v = line.substr(colon + 1);
      size_t b = v.find_first_not_of(" \t");
      v = b == std::string::npos ? "" : v.substr(b);
      resp.headers.emplace_back(line.substr(0, colon), v);
    }
    pos = e + 2;
  }
  resp.body = raw.substr(hdr_end + 4);
  std::string cl = resp.header("Content-Length");
  if (!cl.empty()) {
    size_t len = std::stoul(cl);
    if (resp.body.size() < len) fail("truncated body", host, port, path);
    resp.body.resize(len);
  } else if (::strcasecmp(resp.header("Transfer-Encoding").c_str(), "chunked") == 0) {
    resp.body = decode_chunked(resp.body);
  }
  return resp;
}

}  // namespace harness
