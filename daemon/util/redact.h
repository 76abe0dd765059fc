// A URL fit for logs and error messages: its user info (a password or a
// token) replaced, so that a configuration error, a log line or /healthz
// never shows a secret from nats.urls.
//
// Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace isthmus::util {

// "scheme://user:pass@host..." -> "scheme://user:***@host...",
// "scheme://token@host..."     -> "scheme://***@host...";
// the user info ends at the last '@' (as nats/url.h reads it), so a secret
// holding '@', '/', '?' or '#' is hidden whole; anything without an '@' is
// returned as it is.
std::string redact_userinfo(std::string_view url);

}  // namespace isthmus::util
