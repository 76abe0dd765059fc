// Minimal blocking HTTP/1.1 client for tests: one request per connection
// (Connection: close) to 127.0.0.1:port (or another address), with an
// overall timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace harness {

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // First header value with this name (case-insensitive), or "".
  std::string header(const std::string& name) const;
};

// Sends `method path` with an optional body; throws std::runtime_error on
// connection failure, timeout or an unparsable response.
HttpResponse http_request(uint16_t port, const std::string& method, const std::string& path,
                          const std::string& body = "",
                          const std::string& content_type = "application/json",
                          std::chrono::milliseconds timeout = std::chrono::seconds(5));
// The same to `host` (an IPv4 or IPv6 literal) instead of 127.0.0.1.
HttpResponse http_request_at(const std::string& host, uint16_t port, const std::string& method,
                             const std::string& path, const std::string& body = "",
                             const std::string& content_type = "application/json",
                             std::chrono::milliseconds timeout = std::chrono::seconds(5));
inline HttpResponse http_get(uint16_t port, const std::string& path,
                             std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  return http_request(port, "GET", path, "", "", timeout);
}
inline HttpResponse http_post(uint16_t port, const std::string& path, const std::string& body,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  return http_request(port, "POST", path, body, "application/json", timeout);
}

}  // namespace harness
