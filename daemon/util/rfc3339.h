// RFC 3339 date-times as JetStream writes them ("2026-11-27T07:12:05.750546034Z",
// or with a +hh:mm / -hh:mm offset) to Unix nanoseconds, and back (UTC, for
// messages to operators). Pure code: no libuv, no NATS; the one parser of
// these times in the daemon (the leader's ages of stored messages, the store
// times of foreign messages).
// Thread-safety: a pure function, callable from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace isthmus::util {

// YYYY-MM-DD"T"HH:MM:SS[.fraction]("Z" | +hh:mm | -hh:mm), "T" and "Z" in
// either case. The fraction has 1 or more digits; digits beyond the 9th
// (below a nanosecond) are dropped. Dates are checked against the calendar
// (2026-02-29 is malformed, 2024-02-29 is not); a leap second (:60) is
// accepted and counts as the next second. nullopt when malformed, including
// anything after the offset, and for times that Unix ns in an int64 cannot
// hold (before 1677-09-21T00:12:44Z, after 2262-04-11T23:47:16.854775807Z).
std::optional<int64_t> parse_rfc3339_ns(std::string_view text);

// Unix nanoseconds as UTC "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (always nine
// fraction digits): parse_rfc3339_ns() reads it back for every time it
// accepts (not before 1677-09-21T00:12:44Z).
std::string format_rfc3339_ns(int64_t unix_ns);

}  // namespace isthmus::util
