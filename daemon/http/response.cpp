#include "http/response.h"

#include <nlohmann/json.hpp>

#include "http/request.h"

namespace isthmus::http {

namespace {

std::string strip_crlf(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c != '\r' && c != '\n' && c != '\0') out.push_back(c);
  }
  return out;
}

bool reserved_header(std::string_view name) {
  return iequals(name, "Content-Length") || iequals(name, "Connection") ||
         iequals(name, "Transfer-Encoding") || iequals(name, "Content-Type");
}

}  // namespace

Response Response::json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::text(int status, std::string body, std::string content_type) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

Response Response::error(int status, std::string_view message) {
  nlohmann::json j = {{"error", std::string(message)}};
  return json(status, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Response& Response::header(std::string name, std::string value) {
  headers.emplace_back(std::move(name), std::move(value));
  return *this;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string serialize(const Response& r, bool keep_alive, bool http10, bool omit_body) {
  int status = (r.status >= 100 && r.status <= 999) ? r.status : 500;
  // 1xx, 204 and 304 carry no body.
  bool bodyless = status < 200 || status == 204 || status == 304;
  std::string out;
  out.reserve(128 + r.body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason_phrase(status);
  out += "\r\n";
  if (!bodyless) {
    if (!r.content_type.empty()) {
      out += "Content-Type: ";
      out += strip_crlf(r.content_type);
      out += "\r\n";
    }
    out += "Content-Length: ";
    out += std::to_string(r.body.size());
    out += "\r\n";
  }
  for (const auto& [name, value] : r.headers) {
    if (name.empty() || reserved_header(name)) continue;
    out += strip_crlf(name);
    out += ": ";
    out += strip_crlf(value);
    out += "\r\n";
  }
  if (!keep_alive) {
    out += "Connection: close\r\n";
  } else if (http10) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  if (!bodyless && !omit_body) out += r.body;
  return out;
}

}  // namespace isthmus::http
