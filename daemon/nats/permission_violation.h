// nats-server's text for a permissions violation (an -ERR that leaves the
// connection open), parsed: what was refused, and on which subject.
//
// nats-server 2.9.10 (server/client.go) sends, with the subject quoted by
// Go's %q (between double quotes; '"' and '\' escaped with '\', a control
// or invalid UTF-8 byte as \xNN, other unprintable code points as \uNNNN or
// \UNNNNNNNN, printable UTF-8 as it is):
//   Permissions Violation for Publish to "<subject>"
//   Permissions Violation for Subscription to "<subject>"[ using queue "<queue>"]
//   Permissions Violation for Publish with Reply of "<reply>"
// (later versions may add text after the subject, e.g. ", too many
// tokens": ignored). The -ERR's enclosing single quotes are not part of the
// text (wire::Reader removes them).
//
// Pure: any thread.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace isthmus::nats {

struct PermissionViolation {
  enum class Kind {
    kPublish,       // a PUB/HPUB to `subject`
    kSubscription,  // a SUB to `subject` (with `queue` if a queue group)
    kReply,         // a publish whose reply subject `subject` is reserved
  };
  Kind kind = Kind::kPublish;
  std::string subject;  // as the client sent it
  std::string queue;
};

// kInvalid when text is not one of the above or its quoting is malformed.
Result<PermissionViolation> parse_permission_violation(std::string_view text);

// Reads a Go-quoted string ("...", as %q writes it) at the start of in;
// `used` is set to the bytes it took, closing quote included. kInvalid when
// in does not start with one.
Result<std::string> go_unquote_prefix(std::string_view in, size_t& used);

}  // namespace isthmus::nats
