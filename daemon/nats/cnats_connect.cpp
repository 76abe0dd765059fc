#include "nats/cnats_connect.h"

#include <cctype>

namespace isthmus::nats {

Status apply_tls_policy(natsOptions* opts, const NatsUrl& url) {
  natsStatus s = NATS_OK;
  if (url.tls) s = natsOptions_SetSecure(opts, true);
  // Also for nats://: it applies if the server requires TLS.
  if (s == NATS_OK) s = natsOptions_SetExpectedHostname(opts, url.host.c_str());
  if (s != NATS_OK) return Status(Code::kInvalid, "TLS options for " + url.display() + ": " + connect_failure_text(s));
  return Status::ok();
}

namespace {

// cnats' last error without its "(file.c:123): " prefix.
std::string last_error_detail() {
  const char* e = nats_GetLastError(nullptr);
  std::string d = e != nullptr ? e : "";
  if (!d.empty() && d.front() == '(') {
    size_t end = d.find("): ");
    if (end != std::string::npos) d.erase(0, end + 3);
  }
  return d;
}

// cnats' verify callback reports a refused certificate as
// "SSL handshake error: <code>:<reason>:<details>". False for any other
// text (a handshake that failed otherwise).
bool split_verify_error(const std::string& detail, std::string& reason, std::string& rest) {
  static const std::string kPrefix = "SSL handshake error: ";
  if (detail.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  std::string body = detail.substr(kPrefix.size());
  size_t c1 = body.find(':');
  if (c1 == 0 || c1 == std::string::npos) return false;
  for (size_t i = 0; i < c1; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(body[i]))) return false;
  }
  size_t c2 = body.find(':', c1 + 1);
  reason = body.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
  rest = c2 == std::string::npos ? "" : body.substr(c2 + 1);
  return !reason.empty();
}

}  // namespace

std::string connect_failure_text(natsStatus s) {
  const std::string text = natsStatus_GetText(s);
  const std::string detail = last_error_detail();
  switch (s) {
    case NATS_SECURE_CONNECTION_WANTED:
      // cnats 3.4 reads only tls_required: a server where TLS is optional
      // (allow_non_tls) is refused too, though the data connection would
      // upgrade to it.
      return "tls:// URL, but the server does not require TLS (no TLS, or TLS optional with allow_non_tls, "
             "which the NATS C client cannot use)";
    case NATS_SSL_ERROR: {
      std::string reason, rest;
      if (split_verify_error(detail, reason, rest)) {
        return "TLS: server certificate: " + reason + (rest.empty() ? "" : " (" + rest + ")");
      }
      return "TLS: " + (detail.empty() ? text : detail);
    }
    default:
      return detail.empty() || detail == text ? text : text + ": " + detail;
  }
}

}  // namespace isthmus::nats
