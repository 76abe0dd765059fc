// libFuzzer driver for the HTTP request parser (daemon/http/request_parser).
// The first input byte picks the split size, so the fuzzer explores both
// whole-buffer and piecewise feeding; small limits make the 431/413 paths
// reachable. Properties checked (abort on violation):
//  - an error is one of 400, 413, 431, 501, 505 and is sticky;
//  - no request's header block exceeds the limit, no body exceeds its limit;
//  - finish() never turns a failed parser into a working one.
// Build: link with core_dep (or just request_parser.cpp, request.cpp and
// llhttp_dep) and -fsanitize=fuzzer,address,undefined under clang.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/request_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t step = data[0] == 0 ? size : data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  isthmus::http::ParserLimits limits;
  limits.max_header_bytes = 512;
  limits.max_header_count = 16;
  limits.max_body_bytes = 256;
  isthmus::http::RequestParser parser(limits);

  bool ok = true;
  for (size_t i = 0; i < in.size(); i += step) {
    bool fed = parser.feed(in.substr(i, step));
    if (!ok && fed) std::abort();  // errors are sticky
    ok = fed;
    while (auto req = parser.next()) {
      size_t header_bytes = req->target.size();
      for (const auto& [name, value] : req->headers) header_bytes += name.size() + value.size();
      if (header_bytes > limits.max_header_bytes) std::abort();
      if (req->headers.size() > limits.max_header_count) std::abort();
      if (req->body.size() > limits.max_body_bytes) std::abort();
      if (req->path.empty()) std::abort();
    }
  }
  bool finished = parser.finish();
  if (finished && parser.failed()) std::abort();
  if (parser.failed()) {
    int s = parser.error().status;
    if (s != 400 && s != 413 && s != 431 && s != 501 && s != 505) std::abort();
    if (parser.feed("GET / HTTP/1.1\r\n\r\n")) std::abort();
  }
  return 0;
}
