// nats-server's permissions violation texts (daemon/nats/permission_violation.h):
// the three kinds, subjects quoted the way Go's %q quotes them (the escaped
// forms below are what nats-server 2.9.10 sent for those subjects), and
// texts that are not one.
#include "nats/permission_violation.h"

#include <catch2/catch.hpp>
#include <string>

using isthmus::nats::go_unquote_prefix;
using isthmus::nats::parse_permission_violation;
using isthmus::nats::PermissionViolation;

TEST_CASE("permissions violations: kind and subject", "[nats][permission_violation]") {
  auto p = parse_permission_violation("Permissions Violation for Publish to \"orders.eu.created\"");
  REQUIRE(p);
  CHECK(p->kind == PermissionViolation::Kind::kPublish);
  CHECK(p->subject == "orders.eu.created");

  auto s = parse_permission_violation("Permissions Violation for Subscription to \"secret.>\"");
  REQUIRE(s);
  CHECK(s->kind == PermissionViolation::Kind::kSubscription);
  CHECK(s->subject == "secret.>");
  CHECK(s->queue.empty());

  auto q = parse_permission_violation("Permissions Violation for Subscription to \"a.b\" using queue \"workers\"");
  REQUIRE(q);
  CHECK(q->subject == "a.b");
  CHECK(q->queue == "workers");

  auto r = parse_permission_violation("Permissions Violation for Publish with Reply of \"_R_.x\"");
  REQUIRE(r);
  CHECK(r->kind == PermissionViolation::Kind::kReply);
  CHECK(r->subject == "_R_.x");

  // Text after the subject (later servers: ", too many tokens") is ignored.
  auto t = parse_permission_violation("Permissions Violation for Subscription to \"a.b\", too many tokens");
  REQUIRE(t);
  CHECK(t->subject == "a.b");

  // The JetStream pull subject a leader publishes to.
  auto n = parse_permission_violation("Permissions Violation for Publish to \"$JS.API.CONSUMER.MSG.NEXT.S.c1\"");
  REQUIRE(n);
  CHECK(n->subject == "$JS.API.CONSUMER.MSG.NEXT.S.c1");
}

TEST_CASE("permissions violations: subjects as Go's %q quotes them", "[nats][permission_violation]") {
  // Each pair: what nats-server 2.9.10 wrote, and the subject the client sent.
  const std::pair<std::string, std::string> cases[] = {
      {R"("forbidden.\"q\"")", "forbidden.\"q\""},
      {R"("forbidden.\\b")", "forbidden.\\b"},
      {"\"forbidden.\xc3\xa9\"", "forbidden.\xc3\xa9"},  // printable UTF-8 as it is
      {R"("forbidden.\xff\xfe")", "forbidden.\xff\xfe"},  // invalid UTF-8
      {R"("forbidden.\x7f")", "forbidden.\x7f"},
      {"\"forbidden.'x'\"", "forbidden.'x'"},  // single quotes inside the -ERR's own
      {R"("a.\u200b")", "a.\xe2\x80\x8b"},    // an unprintable code point
      {R"("a.\U0001f600")", "a.\xf0\x9f\x98\x80"},
      {R"("a.\t\101")", "a.\tA"},  // octal: Go reads it, %q does not write it
  };
  for (const auto& [quoted, subject] : cases) {
    INFO(quoted);
    auto p = parse_permission_violation("Permissions Violation for Publish to " + quoted);
    REQUIRE(p);
    CHECK(p->subject == subject);
  }
  size_t used = 0;
  auto u = go_unquote_prefix(R"("a\"b" using queue "q")", used);
  REQUIRE(u);
  CHECK(*u == "a\"b");
  CHECK(used == 6);
}

TEST_CASE("permissions violations: other texts and broken quoting are refused", "[nats][permission_violation]") {
  const std::string bad[] = {
      "Authorization Violation",
      "Permissions Violation",                                     // no kind, no subject
      "Permissions Violation for Publish to orders.x",             // not quoted
      "Permissions Violation for Publish to \"orders.x",           // not closed
      "Permissions Violation for Publish to \"orders.\\x\"",       // \x without digits
      "Permissions Violation for Publish to \"orders.\\q\"",       // unknown escape
      "Permissions Violation for Publish to \"a.\\ud800\"",        // a surrogate is no code point
      "Permissions Violation for Publish to \"\"",                 // empty subject
      "Permissions Violation for Subscription to \"a\" using queue \"q",
      "server: Permissions Violation for Publish to \"x\"",        // not at the start
  };
  for (const auto& text : bad) {
    INFO(text);
    CHECK_FALSE(parse_permission_violation(text));
  }
}
