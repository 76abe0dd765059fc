// Internal to daemon/config: where each key of a loaded file was found, so
// that cross-field checks (validate.cpp) can point at the right place.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"

namespace isthmus::config {

struct Pos {
  int line = 0;  // 0: not in the file
  int column = 0;
};

struct Located {
  std::map<std::string, Pos> values;  // "link.batch_bytes" -> its value
  std::map<std::string, Pos> tables;  // "link", "peers[1]" -> the table header
  std::set<std::string> refused;      // keys whose value already has an error

  bool present(const std::string& key) const { return values.count(key) != 0; }
  bool ok(const std::string& key) const { return refused.count(key) == 0; }
  // The value's position; else its table's; else line 0.
  Pos where(const std::string& key) const;
};

// Cross-field rules (uniqueness, references between keys, relations between
// link settings). Appends to `errors`; skips keys already refused.
void validate(const Config& config, const Located& located, const std::string& file,
              std::vector<ConfigError>* errors);

}  // namespace isthmus::config
