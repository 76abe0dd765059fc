// Unit tests: URLs shown without their password or token (util/redact.h),
// as config errors, logs and /healthz show nats.urls.
#include "util/redact.h"

#include <catch2/catch.hpp>

using isthmus::util::redact_userinfo;

TEST_CASE("a URL's password or token never reaches a message", "[redact]") {
  CHECK(redact_userinfo("nats://isthmus:s3cret@nats.example:4222") == "nats://isthmus:***@nats.example:4222");
  CHECK(redact_userinfo("tls://s3cr3t-token@10.0.0.1") == "tls://***@10.0.0.1");
  // A password with '@' in it: the user info ends at the last '@'.
  CHECK(redact_userinfo("nats://u:p@ss@host:1") == "nats://u:***@host:1");
  // Whatever a password holds ('/', '?', '#' too), up to the last '@', as
  // nats.urls are read: never shown.
  CHECK(redact_userinfo("nats://u:pa/ss@h:0") == "nats://u:***@h:0");
  CHECK(redact_userinfo("nats://u:p#w@") == "nats://u:***@");
  CHECK(redact_userinfo("nats://u:p?w@h") == "nats://u:***@h");
  CHECK(redact_userinfo("nats://t/o#k?e@h") == "nats://***@h");
  // Nothing to hide, or not a URL at all: unchanged (the error says what is wrong).
  CHECK(redact_userinfo("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222");
  CHECK(redact_userinfo("host:4222") == "host:4222");
  CHECK(redact_userinfo("pw@host") == "***@host");
  CHECK(redact_userinfo("") == "");
}
