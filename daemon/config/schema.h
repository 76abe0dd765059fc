// The configuration schema: ONE declarative table (schema.cpp) that names
// every section and key with its type, default, bounds, documentation and
// whether it may change on reload. The loader, the defaults, the reload
// check and the tests that keep config/isthmus.example.toml and
// docs/configuration.md true are all driven by it.
// Thread-safety: the table is immutable static data.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.h"

namespace isthmus::config {

enum class Kind {
  kString,      // TOML string
  kInt,         // TOML integer, bounded by min..max
  kDuration,    // string like "250ms", "2s", "1m30s"; min/max in milliseconds
  kSize,        // integer bytes or string like "64KiB"; min/max in bytes
  kHostPort,    // string "host:port" or "[v6]:port"
  kStringList,  // array of strings, not empty
  kEnum,        // string, one of `choices`
};

// Extra per-value rule applied after the type conversion.
enum class Check {
  kNone,
  kRegionName,    // [a-z0-9][a-z0-9_-]{0,31}
  kStreamName,    // JetStream stream name
  kNatsUrls,      // every element is a nats:// or tls:// URL
  kReadableFile,  // empty, or a readable regular file (relative to the config file)
  kSha256Hex,     // empty, or 64 hex digits (':' separators allowed)
};

enum class Reload {
  kRestart,  // a change needs a restart; reload refuses it by name
  kLive,     // applied by SIGHUP
  kAddRemove,  // identity key of an array section: elements may be added
               // and removed by SIGHUP (other changes per their own keys)
};

// Where a key's value lives in a Config. `index` selects the element for
// keys of an array section ([[peers]], [[streams]]); ignored otherwise.
using FieldRef = std::variant<std::string*, int*, uint32_t*, uint64_t*, int64_t*, Millis*,
                              HostPort*, std::vector<std::string>*>;
using FieldFn = FieldRef (*)(Config& config, size_t index);

struct Section {
  std::string_view name;  // "link"; the TOML table name; "link.tls": a table inside [link]
  bool array = false;     // true: [[name]], an array of tables, may be absent
  std::string_view doc;
};

struct Key {
  std::string_view section;       // Section::name
  std::string_view name;          // key inside the section
  Kind kind = Kind::kString;
  bool required = false;
  std::string_view default_toml;  // default as a TOML literal; empty = none
  int64_t min = 0;                // bounds (int, bytes or ms); min == max == 0: none
  int64_t max = 0;
  std::string_view choices;       // kEnum: "a|b|c"
  Check check = Check::kNone;
  Reload reload = Reload::kRestart;
  std::string_view doc;
  FieldFn field = nullptr;
};

std::span<const Section> sections();
// Every key, grouped by section, in documentation order. For an array
// section the first key is its identity (matched by reload_blockers).
std::span<const Key> keys();
const Section* find_section(std::string_view name);
const Key* find_key(std::string_view section, std::string_view name);

// "string", "integer", "duration", "size", "host:port", "array of strings",
// "string (a|b)": the type column of docs/configuration.md.
std::string kind_name(const Key& key);

// The dotted keys whose value differs between `running` and `next` but
// which cannot change without a restart (Reload::kRestart), e.g.
// {"link.listen", "streams[2].leader"}. Elements of array sections are
// matched by their identity key; adding one is blocked if the identity key
// is kRestart, removing one if it is kRestart. Empty: `next` can be
// applied by reload.
std::vector<std::string> reload_blockers(const Config& running, const Config& next);

// Every key whose value differs, the same way, for the reload's log line:
// {"log.level", "streams[4].name ORDERS added"}. Empty: nothing changed.
std::vector<std::string> changed_keys(const Config& running, const Config& next);

}  // namespace isthmus::config
