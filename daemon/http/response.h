// Response: what a handler returns, and its HTTP/1.1 serialisation. The
// server adds Content-Length and the Connection header itself.
// Thread-safety: plain value type.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace isthmus::http {

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Extra header fields. Content-Length, Connection and Transfer-Encoding are
  // the server's and are dropped here; CR/LF in names or values are removed.
  std::vector<std::pair<std::string, std::string>> headers;
  // Close the connection after this response even if the client keeps alive.
  bool close = false;

  // `body` must already be JSON.
  static Response json(int status, std::string body);
  static Response text(int status, std::string body,
                       std::string content_type = "text/plain; charset=utf-8");
  // {"error":"<message>"} (JSON-escaped), the shape of every error reply.
  static Response error(int status, std::string_view message);

  Response& header(std::string name, std::string value);
};

// "OK", "Not Found", ...; "Unknown" for codes without a phrase here.
const char* reason_phrase(int status);

// Wire form of `r`. `keep_alive`: the connection stays open afterwards (else
// "Connection: close" is sent); `http10`: the request was HTTP/1.0, so a kept
// connection is announced with "Connection: keep-alive"; `omit_body`: HEAD
// (Content-Length still gives the size of the body a GET would carry).
std::string serialize(const Response& r, bool keep_alive, bool http10, bool omit_body);

}  // namespace isthmus::http
