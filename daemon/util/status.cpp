#include "util/status.h"

namespace isthmus {

const char* code_name(Code c) {
  switch (c) {
    case Code::kOk: return "ok";
    case Code::kInvalid: return "invalid";
    case Code::kTooLarge: return "too_large";
    case Code::kTruncated: return "truncated";
    case Code::kCorrupt: return "corrupt";
    case Code::kUnsupported: return "unsupported";
    case Code::kNotFound: return "not_found";
    case Code::kConflict: return "conflict";
    case Code::kIo: return "io";
    case Code::kTimeout: return "timeout";
    case Code::kUnavailable: return "unavailable";
    case Code::kInternal: return "internal";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(code_name(code_)) + ": " + msg_;
}

}  // namespace isthmus
