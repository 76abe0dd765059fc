// Loading: TOML text -> toml++ tree -> Config, driven by the schema table.
// toml++ is built with exceptions (Debian's shared library); parse_error is
// caught here, at the boundary, and nothing else can throw past load_*.
#include <cctype>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

#include "config/config.h"
#include "config/located.h"
#include "config/schema.h"
#include "config/values.h"

namespace isthmus::config {
namespace {

Pos pos_of(const toml::source_region& r) {
  return Pos{static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
}

// "integer", "string", ...: the TOML type of a node, as in error messages.
const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return n.is_array_of_tables() && !n.as_array()->empty()
                                            ? "array of tables" : "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "nothing";
  }
}

std::string expected(const Key& k) {
  switch (k.kind) {
    case Kind::kString: return "a string";
    case Kind::kInt: return "an integer";
    case Kind::kDuration: return "a duration string like \"2s\"";
    case Kind::kSize: return "a size (integer bytes, or a string like \"64KiB\")";
    case Kind::kHostPort: return "a \"host:port\" string";
    case Kind::kStringList: return "an array of strings";
    case Kind::kEnum: return "a string";
  }
  return "?";
}

std::string format_bound(const Key& k, int64_t v) {
  if (k.kind == Kind::kDuration) return format_duration(Millis(v));
  if (k.kind == Kind::kSize) return format_size(static_cast<uint64_t>(v));
  return std::to_string(v);
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " (did you mean \"x\"?)" when a known name is close, else "".
template <typename Names>
std::string suggestion(std::string_view unknown, const Names& names) {
  std::string_view best;
  size_t best_d = 3;
  for (std::string_view n : names) {
    size_t d = edit_distance(unknown, n);
    if (d < best_d) {
      best_d = d;
      best = n;
    }
  }
  if (best.empty()) return "";
  return " (did you mean \"" + std::string(best) + "\"?)";
}

std::string directory_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return path.substr(0, slash + 1);
}

// A converted value, before it is stored in the Config.
using Value = std::variant<std::string, int64_t, Millis, HostPort, std::vector<std::string>>;

class Loader {
 public:
  explicit Loader(std::string file) : file_(std::move(file)) {}

  LoadResult run(std::string_view text) {
    LoadResult result;
    result.config.path = file_;
    toml::table root;
    try {
      root = toml::parse(text, std::string_view(file_));
    } catch (const toml::parse_error& e) {
      error(pos_of(e.source()), "", std::string(e.description()));
      result.errors = std::move(errors_);
      return result;
    }
    load_root(root, &result.config);
    validate(result.config, located_, file_, &errors_);
    std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
      return a.line != b.line ? a.line < b.line : a.column < b.column;
    });
    result.errors = std::move(errors_);
    return result;
  }

 private:
  void error(Pos p, std::string key, std::string message) {
    errors_.push_back(ConfigError{file_, p.line, p.column, std::move(key), std::move(message)});
  }

  void refuse(Pos p, const std::string& key, std::string message) {
    located_.refused.insert(key);
    error(p, key, std::move(message));
  }

  void unknown(const toml::key& k, const toml::node& n, const std::string& dotted,
               std::string_view section) {
    std::vector<std::string_view> names;
    if (section.empty()) {
      for (const Section& s : sections()) names.push_back(s.name);
    } else {
      for (const Key& key : keys()) {
        if (key.section == section) names.push_back(key.name);
      }
    }
    std::string what;
    if (n.is_table()) {
      what = "unknown table [" + dotted + "]";
    } else if (n.is_array_of_tables() && !n.as_array()->empty()) {
      what = "unknown table [[" + dotted + "]]";
    } else {
      what = "unknown key";
    }
    error(pos_of(k.source()), dotted, what + suggestion(k.str(), names));
  }

  void load_root(const toml::table& root, Config* config) {
    for (auto&& [k, node] : root) {
      const std::string name(k.str());
      const Section* s = find_section(name);
      if (s == nullptr) {
        unknown(k, node, name, "");
        continue;
      }
      if (!s->array) {
        const toml::table* t = node.as_table();
        if (t == nullptr) {
          refuse(pos_of(node.source()), name, std::string("expected a table, got ") + type_name(node));
          continue;
        }
        located_.tables[name] = pos_of(t->source());
        load_table(*s, *t, name, 0, config);
        continue;
      }
      const toml::array* a = node.as_array();
      if (a == nullptr) {
        refuse(pos_of(node.source()), name,
               "expected an array of tables ([[" + name + "]]), got " + type_name(node));
        continue;
      }
      resize(name, a->size(), config);
      for (size_t i = 0; i < a->size(); ++i) {
        const toml::node& elem = *a->get(i);
        const std::string prefix = name + "[" + std::to_string(i) + "]";
        const toml::table* t = elem.as_table();
        if (t == nullptr) {
          refuse(pos_of(elem.source()), prefix, std::string("expected a table, got ") + type_name(elem));
          continue;
        }
        located_.tables[prefix] = pos_of(t->source());
        load_table(*s, *t, prefix, i, config);
      }
    }
    // Sections absent from the file: defaults, and errors for required keys.
    for (const Section& s : sections()) {
      if (s.array || root.contains(s.name)) continue;
      // A nested table ([link.tls]) is handled by its parent when that exists.
      const std::string_view parent = s.name.substr(0, s.name.find('.'));
      if (parent != s.name && root.contains(parent)) continue;
      for (const Key& k : keys()) {
        if (k.section != s.name) continue;
        const std::string dotted = std::string(s.name) + "." + std::string(k.name);
        if (k.required) {
          refuse(Pos{}, dotted, "required key is missing (there is no [" + std::string(s.name) + "] table)");
        } else {
          apply_default(k, dotted, 0, config);
        }
      }
    }
  }

  static void resize(const std::string& section, size_t n, Config* config) {
    if (section == "peers") config->peers.resize(n);
    if (section == "streams") config->streams.resize(n);
  }

  void load_table(const Section& s, const toml::table& t, const std::string& prefix, size_t index,
                  Config* config) {
    for (auto&& [k, node] : t) {
      const std::string dotted = prefix + "." + std::string(k.str());
      const Key* key = find_key(s.name, k.str());
      if (key == nullptr) {
        // A table nested in this one ([link.tls]).
        const Section* sub = find_section(std::string(s.name) + "." + std::string(k.str()));
        if (sub != nullptr && !sub->array) {
          if (const toml::table* st = node.as_table()) {
            located_.tables[dotted] = pos_of(st->source());
            load_table(*sub, *st, dotted, index, config);
          } else {
            refuse(pos_of(node.source()), dotted, std::string("expected a table, got ") + type_name(node));
          }
          continue;
        }
        unknown(k, node, dotted, s.name);
        continue;
      }
      located_.values[dotted] = pos_of(node.source());
      load_value(*key, node, dotted, index, config);
    }
    for (const Key& k : keys()) {
      if (k.section != s.name || t.contains(k.name)) continue;
      const std::string dotted = prefix + "." + std::string(k.name);
      if (k.required) {
        refuse(pos_of(t.source()), dotted, "required key is missing");
      } else {
        apply_default(k, dotted, index, config);
      }
    }
    // Nested tables absent from this one: their defaults.
    const std::string child_prefix = std::string(s.name) + ".";
    for (const Key& k : keys()) {
      if (k.section.substr(0, child_prefix.size()) != child_prefix) continue;
      std::string_view child = k.section.substr(child_prefix.size());
      if (child.find('.') != std::string_view::npos || t.contains(child)) continue;
      const std::string dotted = prefix + "." + std::string(child) + "." + std::string(k.name);
      if (k.required) {
        refuse(pos_of(t.source()), dotted, "required key is missing");
      } else {
        apply_default(k, dotted, index, config);
      }
    }
  }

  void apply_default(const Key& k, const std::string& dotted, size_t index, Config* config) {
    if (k.default_toml.empty()) return;
    try {
      toml::table t = toml::parse("v = " + std::string(k.default_toml));
      load_value(k, *t.get("v"), dotted, index, config);
    } catch (const toml::parse_error& e) {
      refuse(Pos{}, dotted, "internal error: bad schema default: " + std::string(e.description()));
    }
  }

  void load_value(const Key& k, const toml::node& n, const std::string& dotted, size_t index,
                  Config* config) {
    const Pos at = pos_of(n.source());
    auto wrong_type = [&] {
      refuse(at, dotted, "expected " + expected(k) + ", got " + type_name(n));
    };
    std::optional<Value> v;
    switch (k.kind) {
      case Kind::kString:
      case Kind::kEnum: {
        const auto* s = n.as_string();
        if (s == nullptr) return wrong_type();
        v = s->get();
        break;
      }
      case Kind::kInt: {
        const auto* i = n.as_integer();
        if (i == nullptr) return wrong_type();
        v = i->get();
        break;
      }
      case Kind::kDuration: {
        const auto* s = n.as_string();
        if (s == nullptr) return wrong_type();
        Result<Millis> d = parse_duration(s->get());
        if (!d) return refuse(at, dotted, d.status().message());
        v = *d;
        break;
      }
      case Kind::kSize: {
        if (const auto* i = n.as_integer()) {
          if (i->get() < 0) return refuse(at, dotted, "a size cannot be negative");
          v = i->get();
          break;
        }
        const auto* s = n.as_string();
        if (s == nullptr) return wrong_type();
        Result<uint64_t> b = parse_size(s->get());
        if (!b) return refuse(at, dotted, b.status().message());
        if (*b > static_cast<uint64_t>(INT64_MAX)) return refuse(at, dotted, "size too large");
        v = static_cast<int64_t>(*b);
        break;
      }
      case Kind::kHostPort: {
        const auto* s = n.as_string();
        if (s == nullptr) return wrong_type();
        Result<HostPort> hp = parse_host_port(s->get());
        if (!hp) return refuse(at, dotted, hp.status().message());
        v = *hp;
        break;
      }
      case Kind::kStringList: {
        const auto* a = n.as_array();
        if (a == nullptr) return wrong_type();
        if (a->empty()) return refuse(at, dotted, "must not be empty");
        std::vector<std::string> list;
        bool ok = true;
        for (size_t i = 0; i < a->size(); ++i) {
          const toml::node& e = *a->get(i);
          const std::string ekey = dotted + "[" + std::to_string(i) + "]";
          const auto* s = e.as_string();
          if (s == nullptr) {
            refuse(pos_of(e.source()), ekey, std::string("expected a string, got ") + type_name(e));
            ok = false;
            continue;
          }
          if (k.check == Check::kNatsUrls) {
            Status st = check_nats_url(s->get());
            if (!st) {
              refuse(pos_of(e.source()), ekey, st.message());
              ok = false;
              continue;
            }
          }
          list.push_back(s->get());
        }
        if (!ok) {
          located_.refused.insert(dotted);
          return;
        }
        v = std::move(list);
        break;
      }
    }
    if (!check(k, at, dotted, &*v)) return;
    store(k.field(*config, index), std::move(*v));
  }

  // Bounds, choices and per-key rules. False (with an error) if refused.
  bool check(const Key& k, Pos at, const std::string& dotted, Value* v) {
    if (k.min != 0 || k.max != 0) {
      int64_t x = 0;
      if (const auto* i = std::get_if<int64_t>(v)) x = *i;
      if (const auto* d = std::get_if<Millis>(v)) x = d->count();
      if (x < k.min || x > k.max) {
        refuse(at, dotted, "must be between " + format_bound(k, k.min) + " and " + format_bound(k, k.max) +
                               ", got " + format_bound(k, x));
        return false;
      }
    }
    if (k.kind == Kind::kEnum) {
      const std::string& s = std::get<std::string>(*v);
      std::string_view choices = k.choices;
      bool found = false;
      size_t start = 0;
      while (start <= choices.size()) {
        size_t bar = choices.find('|', start);
        if (bar == std::string_view::npos) bar = choices.size();
        if (choices.substr(start, bar - start) == s) found = true;
        start = bar + 1;
      }
      if (!found) {
        std::string list(choices);
        std::replace(list.begin(), list.end(), '|', ',');
        refuse(at, dotted, "must be one of " + list + "; got \"" + s + "\"");
        return false;
      }
    }
    Status st;
    switch (k.check) {
      case Check::kRegionName: st = check_region_name(std::get<std::string>(*v)); break;
      case Check::kStreamName: st = check_stream_name(std::get<std::string>(*v)); break;
      case Check::kReadableFile: st = check_file(&std::get<std::string>(*v)); break;
      case Check::kSha256Hex: st = check_sha256_hex(std::get<std::string>(*v)); break;
      case Check::kNatsUrls:  // per element, in load_value
      case Check::kNone: break;
    }
    if (!st) {
      refuse(at, dotted, st.message());
      return false;
    }
    return true;
  }

  // Empty, or 32 bytes in hex (two digits each, ':' between bytes allowed).
  static Status check_sha256_hex(const std::string& hex) {
    if (hex.empty()) return Status::ok();
    size_t digits = 0;
    for (char c : hex) {
      if (c == ':') continue;
      if (!std::isxdigit(static_cast<unsigned char>(c))) {
        return Status(Code::kInvalid, "not a hex SHA-256: unexpected character '" + std::string(1, c) + "'");
      }
      ++digits;
    }
    if (digits != 64) {
      return Status(Code::kInvalid, "a SHA-256 pin has 64 hex digits, got " + std::to_string(digits));
    }
    return Status::ok();
  }

  // Resolves a relative path against the config file's directory and checks
  // that it names a readable regular file. Empty means "none".
  Status check_file(std::string* path) const {
    if (path->empty()) return Status::ok();
    if (path->front() != '/') *path = directory_of(file_) + *path;
    struct stat st {};
    if (::stat(path->c_str(), &st) != 0) {
      return Status(Code::kNotFound, "cannot use \"" + *path + "\": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) return Status(Code::kInvalid, "\"" + *path + "\" is not a regular file");
    if (::access(path->c_str(), R_OK) != 0) {
      return Status(Code::kIo, "cannot read \"" + *path + "\": " + std::strerror(errno));
    }
    return Status::ok();
  }

  static void store(FieldRef ref, Value v) {
    std::visit(
        [&v](auto* p) {
          using T = std::remove_pointer_t<decltype(p)>;
          if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, Millis> ||
                        std::is_same_v<T, HostPort> || std::is_same_v<T, std::vector<std::string>>) {
            if (auto* x = std::get_if<T>(&v)) *p = std::move(*x);
          } else {
            // Integers: the schema bounds guarantee the value fits T.
            if (auto* x = std::get_if<int64_t>(&v)) *p = static_cast<T>(*x);
          }
        },
        ref);
  }

  std::string file_;
  std::vector<ConfigError> errors_;
  Located located_;
};

}  // namespace

Pos Located::where(const std::string& key) const {
  if (auto it = values.find(key); it != values.end()) return it->second;
  size_t dot = key.rfind('.');
  if (dot != std::string::npos) {
    if (auto it = tables.find(key.substr(0, dot)); it != tables.end()) return it->second;
  }
  return Pos{};
}

LoadResult load_string(const std::string& text, const std::string& path) {
  return Loader(path).run(text);
}

LoadResult load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult r;
    r.config.path = path;
    r.errors.push_back(ConfigError{path, 0, 0, "", std::string("cannot open: ") + std::strerror(errno)});
    return r;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return load_string(ss.str(), path);
}

}  // namespace isthmus::config
