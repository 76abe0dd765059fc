#include "util/redact.h"

namespace isthmus::util {

std::string redact_userinfo(std::string_view url) {
  size_t sep = url.find("://");
  size_t start = sep == std::string_view::npos ? 0 : sep + 3;
  // The user info ends at the last '@', as nats.urls are read (a password
  // may itself hold '@', '/', '?' or '#'): whatever precedes it is hidden.
  std::string_view authority = url.substr(start);
  size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  std::string_view info = authority.substr(0, at);
  size_t colon = info.find(':');
  std::string out(url.substr(0, start));
  if (colon != std::string_view::npos) {
    out.append(info.substr(0, colon));
    out.append(":***");
  } else {
    out.append("***");
  }
  out.append(url.substr(start + at));
  return out;
}

}  // namespace isthmus::util
