#include "util/redact.h"

namespace isthmus::util {

std::string redact_userinfo(std::string_view url) {
  size_t sep = url.find("://");
  size_t start = sep == std::string_view::npos ? 0 : sep + 3;
  // The authority ends at the first '/', '?' or '#'; its user info at the
  // last '@' inside it (a password may itself contain '@').
  size_t end = url.find_first_of("/?#", start);
  if (end == std::string_view::npos) end = url.size();
  std::string_view authority = url.substr(start, end - start);
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
