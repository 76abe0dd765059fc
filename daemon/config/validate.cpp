// Cross-field rules: everything that relates two keys. Single-key rules
// (types, bounds, syntax) are applied by the loader from the schema.
#include <map>

#include "config/located.h"
#include "config/values.h"

namespace isthmus::config {
namespace {

class Validator {
 public:
  Validator(const Config& c, const Located& l, const std::string& file, std::vector<ConfigError>* errors)
      : c_(c), l_(l), file_(file), errors_(errors) {}

  void run() {
    peers();
    streams();
    link();
    link_tls();
    listeners();
  }

 private:
  void error(const std::string& key, std::string message) {
    Pos p = l_.where(key);
    if (!l_.present(key)) message += " (default)";
    errors_->push_back(ConfigError{file_, p.line, p.column, key, std::move(message)});
  }

  static std::string at(const std::string& key, Pos p) {
    if (p.line == 0) return key;
    return key + ", line " + std::to_string(p.line);
  }

  static std::string item(const char* section, size_t i, const char* key) {
    return std::string(section) + "[" + std::to_string(i) + "]." + key;
  }

  void peers() {
    std::map<std::string, std::string> names;      // name -> first key
    std::map<std::string, std::string> addresses;  // "host:port" -> first key
    const bool region_ok = l_.ok("region.name") && !c_.region.name.empty();
    for (size_t i = 0; i < c_.peers.size(); ++i) {
      const Peer& p = c_.peers[i];
      const std::string name_key = item("peers", i, "name");
      if (l_.ok(name_key) && !p.name.empty()) {
        if (region_ok && p.name == c_.region.name) {
          error(name_key, "\"" + p.name + "\" is this region's own name (region.name); list only the other regions");
        } else if (auto [it, fresh] = names.emplace(p.name, name_key); !fresh) {
          error(name_key, "duplicate peer name \"" + p.name + "\" (first at " +
                              at(it->second, l_.where(it->second)) + ")");
        }
      }
      const std::string addr_key = item("peers", i, "address");
      if (l_.ok(addr_key) && !p.address.host.empty()) {
        const std::string addr = p.address.to_string();
        if (l_.ok("link.listen") && addr == c_.link.listen.to_string()) {
          error(addr_key, "\"" + addr + "\" is this region's own link.listen address");
        } else if (auto [it, fresh] = addresses.emplace(addr, addr_key); !fresh) {
          error(addr_key, "duplicate peer address \"" + addr + "\" (first at " +
                              at(it->second, l_.where(it->second)) + ")");
        }
      }
    }
  }

  void streams() {
    std::map<std::string, std::string> names;
    for (size_t i = 0; i < c_.streams.size(); ++i) {
      const Stream& s = c_.streams[i];
      const std::string name_key = item("streams", i, "name");
      if (l_.ok(name_key) && !s.name.empty()) {
        if (auto [it, fresh] = names.emplace(s.name, name_key); !fresh) {
          error(name_key, "duplicate stream \"" + s.name + "\" (first at " +
                              at(it->second, l_.where(it->second)) + ")");
        }
      }
      const std::string leader_key = item("streams", i, "leader");
      if (!l_.ok(leader_key) || s.leader.empty() || !l_.ok("region.name")) continue;
      if (s.leader == c_.region.name || c_.find_peer(s.leader) != nullptr) continue;
      std::string known = "\"" + c_.region.name + "\" (this region)";
      for (const Peer& p : c_.peers) {
        if (!p.name.empty()) known += ", \"" + p.name + "\"";
      }
      error(leader_key, "unknown region \"" + s.leader + "\"; the leader must be one of " + known);
    }
  }

  void link() {
    const Link& k = c_.link;
    if (l_.ok("link.batch_bytes") && l_.ok("link.max_frame_bytes") && k.batch_bytes > k.max_frame_bytes / 2) {
      error("link.batch_bytes", format_size(k.batch_bytes) + " exceeds half of link.max_frame_bytes (" +
                                    format_size(k.max_frame_bytes / 2) + ")");
    }
    if (l_.ok("link.window_bytes") && l_.ok("link.max_frame_bytes") && k.window_bytes < k.max_frame_bytes) {
      error("link.window_bytes", format_size(k.window_bytes) + " is less than link.max_frame_bytes (" +
                                     format_size(k.max_frame_bytes) + "): a full frame could never be sent");
    }
    if (l_.ok("link.peer_window_bytes") && l_.ok("link.max_frame_bytes") &&
        k.peer_window_bytes < k.max_frame_bytes) {
      error("link.peer_window_bytes", format_size(k.peer_window_bytes) + " is less than link.max_frame_bytes (" +
                                          format_size(k.max_frame_bytes) + "): a full frame could never be sent");
    }
    if (l_.ok("link.stale_after") && l_.ok("link.heartbeat_interval") &&
        k.stale_after <= 2 * k.heartbeat_interval) {
      error("link.stale_after", format_duration(k.stale_after) +
                                    " must exceed 2 x link.heartbeat_interval (" +
                                    format_duration(2 * k.heartbeat_interval) + ")");
    }
    if (l_.ok("link.backoff_max") && l_.ok("link.backoff_min") && k.backoff_max < k.backoff_min) {
      error("link.backoff_max", format_duration(k.backoff_max) + " is less than link.backoff_min (" +
                                    format_duration(k.backoff_min) + ")");
    }
  }

  // Links are always mutual TLS: a region with peers cannot run without its
  // certificate files. A missing file is reported at its key, else at the
  // [link.tls] table, else at the first peer.
  void link_tls() {
    // The first peer that loaded as a table (none: no rule to apply), and
    // nothing to add when [link] or [link.tls] itself was refused.
    size_t first = c_.peers.size();
    for (size_t i = 0; i < c_.peers.size() && first == c_.peers.size(); ++i) {
      if (l_.ok("peers[" + std::to_string(i) + "]")) first = i;
    }
    if (first == c_.peers.size() || !l_.ok("link") || !l_.ok("link.tls")) return;
    const Tls& t = c_.link.tls;
    for (auto [key, value] : {std::pair{"link.tls.ca", &t.ca}, std::pair{"link.tls.cert", &t.cert},
                              std::pair{"link.tls.key", &t.key}}) {
      if (!value->empty() || !l_.ok(key)) continue;
      Pos p = l_.where(key);
      if (p.line == 0) p = l_.where(item("peers", first, "name"));  // that peer's name, else its table
      errors_->push_back(ConfigError{file_, p.line, p.column, key,
                                     "required when [[peers]] are configured (links are always mutual TLS)"});
    }
  }

  void listeners() {
    if (l_.ok("http.listen") && l_.ok("link.listen") &&
        c_.http.listen.to_string() == c_.link.listen.to_string()) {
      // A named string, not "\"" + a temporary: for that, GCC 12 at -O3 reports a false -Wrestrict
      // inside std::string.
      const std::string both = c_.http.listen.to_string();
      error("http.listen", "\"" + both + "\" is also link.listen");
    }
  }

  const Config& c_;
  const Located& l_;
  const std::string& file_;
  std::vector<ConfigError>* errors_;
};

}  // namespace

void validate(const Config& config, const Located& located, const std::string& file,
              std::vector<ConfigError>* errors) {
  Validator(config, located, file, errors).run();
}

}  // namespace isthmus::config
