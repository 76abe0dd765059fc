#include "config/schema.h"

#include <array>
#include <map>

namespace isthmus::config {
namespace {

constexpr int64_t KiB = 1024;
constexpr int64_t MiB = 1024 * KiB;
constexpr int64_t GiB = 1024 * MiB;
constexpr int64_t kMs = 1;
constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60 * kSec;

// Field accessors, one line per key.
#define FIELD(expr) [](Config& c, size_t i) -> FieldRef { (void)c; (void)i; return &(expr); }

constexpr std::array kSections{
    Section{"region", false, "This region: its name and failover priority."},
    Section{"nats", false, "The local NATS JetStream cluster this daemon serves."},
    Section{"link", false, "Links to the other regions' daemons: listener, framing, flow control, liveness."},
    Section{"link.tls", false, "TLS material of this region's links (required when there are peers)."},
    Section{"peers", true, "The other regions, one [[peers]] table each (full mesh)."},
    Section{"http", false, "The HTTP API: health, lag, metrics, status page."},
    Section{"streams", true, "Replicated JetStream streams, one [[streams]] table each."},
    Section{"log", false, "Logging to standard error (journald under systemd)."},
    Section{"process", false, "The daemon process: how its threads are scheduled."},
};

const std::array kKeys{
    // [region]
    Key{.section = "region", .name = "name", .kind = Kind::kString, .required = true,
        .check = Check::kRegionName,
        .doc = "This region's name, as its peers know it: [a-z0-9][a-z0-9_-]{0,31}.",
        .field = FIELD(c.region.name)},
    Key{.section = "region", .name = "priority", .kind = Kind::kInt, .default_toml = "100",
        .min = 1, .max = 1000,
        .doc = "Failover preference: among equally up-to-date regions the lowest wins elections. Reserved: unused until "
                "elections land.",
        .field = FIELD(c.region.priority)},

    // [nats]
    Key{.section = "nats", .name = "urls", .kind = Kind::kStringList,
        .default_toml = R"(["nats://127.0.0.1:4222"])", .check = Check::kNatsUrls,
        .doc = "Servers of the local cluster (nats:// or tls://); the client picks among them.",
        .field = FIELD(c.nats.urls)},
    Key{.section = "nats", .name = "credentials", .kind = Kind::kString, .default_toml = R"("")",
        .check = Check::kReadableFile,
        .doc = "Path to a .creds file (relative to this file's directory); empty: no credentials. Must exist.",
        .field = FIELD(c.nats.credentials)},
    Key{.section = "nats", .name = "replicas", .kind = Kind::kInt, .default_toml = "1",
        .min = 1, .max = 5,
        .doc = "In-cluster replicas (R) of the replica streams Isthmus creates in this region.",
        .field = FIELD(c.nats.replicas)},
    Key{.section = "nats", .name = "request_timeout", .kind = Kind::kDuration,
        .default_toml = R"("2s")", .min = 100 * kMs, .max = 5 * kMin, .reload = Reload::kLive,
        .doc = "Timeout of JetStream API requests and publish acknowledgements.",
        .field = FIELD(c.nats.request_timeout)},
    Key{.section = "nats", .name = "reconnect_wait", .kind = Kind::kDuration,
        .default_toml = R"("250ms")", .min = 10 * kMs, .max = 5 * kSec,
        .doc = "First retry after a lost connection; doubles on each failure, up to 5s.",
        .field = FIELD(c.nats.reconnect_wait)},
    Key{.section = "nats", .name = "pending_bytes_limit", .kind = Kind::kSize,
        .default_toml = R"("8MiB")", .min = 64 * KiB, .max = 1 * GiB,
        .doc = "Bytes a subscription may hold undelivered before it is a slow consumer.",
        .field = FIELD(c.nats.pending_bytes_limit)},
    Key{.section = "nats", .name = "reconcile_max_deleted", .kind = Kind::kInt, .default_toml = "100000",
        .min = 0, .max = 1'000'000,
        .doc = "Interior deletes in a led stream above which its deletes are no longer reconciled from the "
               "stream's deleted list (only deletes the daemon sees happen, and removals from the front).",
        .field = FIELD(c.nats.reconcile_max_deleted)},

    // [link]
    Key{.section = "link", .name = "listen", .kind = Kind::kHostPort,
        .default_toml = R"("127.0.0.1:7422")",
        .doc = "Address the link listener binds; peers dial it.",
        .field = FIELD(c.link.listen)},
    Key{.section = "link", .name = "max_frame_bytes", .kind = Kind::kSize,
        .default_toml = R"("8MiB")", .min = 4 * KiB, .max = 64 * MiB,
        .doc = "Largest frame accepted; a larger declared length closes the link before allocation.",
        .field = FIELD(c.link.max_frame_bytes)},
    Key{.section = "link", .name = "batch_bytes", .kind = Kind::kSize,
        .default_toml = R"("64KiB")", .min = 1 * KiB, .max = 32 * MiB, .reload = Reload::kLive,
        .doc = "Target payload bytes per data frame; at most max_frame_bytes/2.",
        .field = FIELD(c.link.batch_bytes)},
    Key{.section = "link", .name = "window_messages", .kind = Kind::kInt,
        .default_toml = "50000", .min = 1, .max = 10000000,
        .doc = "Unacknowledged messages allowed in flight per (stream, follower).",
        .field = FIELD(c.link.window_messages)},
    Key{.section = "link", .name = "window_bytes", .kind = Kind::kSize,
        .default_toml = R"("8MiB")", .min = 64 * KiB, .max = 4 * GiB, .reload = Reload::kLive,
        .doc = "Unacknowledged bytes allowed in flight per (stream, follower); at least max_frame_bytes.",
        .field = FIELD(c.link.window_bytes)},
    Key{.section = "link", .name = "peer_window_bytes", .kind = Kind::kSize,
        .default_toml = R"("32MiB")", .min = 64 * KiB, .max = 16 * GiB, .reload = Reload::kLive,
        .doc = "Unacknowledged bytes allowed in flight per link, over all its streams; at least max_frame_bytes.",
        .field = FIELD(c.link.peer_window_bytes)},
    Key{.section = "link", .name = "heartbeat_interval", .kind = Kind::kDuration,
        .default_toml = R"("1s")", .min = 50 * kMs, .max = 1 * kMin, .reload = Reload::kLive,
        .doc = "Interval between heartbeats on each link (priority lane).",
        .field = FIELD(c.link.heartbeat_interval)},
    Key{.section = "link", .name = "stale_after", .kind = Kind::kDuration,
        .default_toml = R"("10s")", .min = 200 * kMs, .max = 10 * kMin, .reload = Reload::kLive,
        .doc = "Close a link that received nothing this long; more than 2 x heartbeat_interval.",
        .field = FIELD(c.link.stale_after)},
    Key{.section = "link", .name = "handshake_timeout", .kind = Kind::kDuration,
        .default_toml = R"("5s")", .min = 100 * kMs, .max = 5 * kMin, .reload = Reload::kLive,
        .doc = "Time allowed from connect to a completed hello exchange.",
        .field = FIELD(c.link.handshake_timeout)},
    Key{.section = "link", .name = "backoff_min", .kind = Kind::kDuration,
        .default_toml = R"("100ms")", .min = 10 * kMs, .max = 1 * kMin, .reload = Reload::kLive,
        .doc = "First redial delay after a failed or lost link; doubles (with jitter) per failure.",
        .field = FIELD(c.link.backoff_min)},
    Key{.section = "link", .name = "backoff_max", .kind = Kind::kDuration,
        .default_toml = R"("5s")", .min = 10 * kMs, .max = 10 * kMin, .reload = Reload::kLive,
        .doc = "Longest redial delay; at least backoff_min.",
        .field = FIELD(c.link.backoff_max)},
    Key{.section = "link", .name = "compression", .kind = Kind::kEnum, .default_toml = R"("s2")",
        .choices = "s2|none",
        .doc = "S2-compress the frames of every link (both ends must agree; see peers[].compression).",
        .field = FIELD(c.link.compression)},

    // [link.tls]
    Key{.section = "link.tls", .name = "ca", .kind = Kind::kString, .default_toml = R"("")",
        .check = Check::kReadableFile,
        .doc = "PEM file of the CA that signs every region's link certificate. Required when there are peers.",
        .field = FIELD(c.link.tls.ca)},
    Key{.section = "link.tls", .name = "cert", .kind = Kind::kString, .default_toml = R"("")",
        .check = Check::kReadableFile,
        .doc = "PEM certificate of this region, with region.name as a DNS subject alternative name.",
        .field = FIELD(c.link.tls.cert)},
    Key{.section = "link.tls", .name = "key", .kind = Kind::kString, .default_toml = R"("")",
        .check = Check::kReadableFile,
        .doc = "PEM private key of cert.",
        .field = FIELD(c.link.tls.key)},

    // [[peers]]
    Key{.section = "peers", .name = "name", .kind = Kind::kString, .required = true,
        .check = Check::kRegionName, .reload = Reload::kAddRemove,
        .doc = "The peer region's name (its region.name); unique, not this region's.",
        .field = FIELD(c.peers[i].name)},
    Key{.section = "peers", .name = "address", .kind = Kind::kHostPort, .required = true,
        .reload = Reload::kLive,
        .doc = "Where the peer's daemon listens for links (its link.listen, as reachable from here).",
        .field = FIELD(c.peers[i].address)},
    Key{.section = "peers", .name = "pin_sha256", .kind = Kind::kString, .default_toml = R"("")",
        .check = Check::kSha256Hex,
        .doc = "Optional: hex SHA-256 of the peer certificate's SubjectPublicKeyInfo; another key is refused.",
        .field = FIELD(c.peers[i].pin_sha256)},
    Key{.section = "peers", .name = "compression", .kind = Kind::kEnum, .default_toml = R"("link")",
        .choices = "link|s2|none",
        .doc = "S2 on this link: \"link\" follows link.compression; the peer must choose the same.",
        .field = FIELD(c.peers[i].compression)},

    // [http]
    Key{.section = "http", .name = "listen", .kind = Kind::kHostPort,
        .default_toml = R"("127.0.0.1:7480")",
        .doc = "Address of the HTTP API; loopback by default.",
        .field = FIELD(c.http.listen)},

    // [[streams]]
    Key{.section = "streams", .name = "name", .kind = Kind::kString, .required = true,
        .check = Check::kStreamName, .reload = Reload::kAddRemove,
        .doc = "JetStream stream name; unique.",
        .field = FIELD(c.streams[i].name)},
    Key{.section = "streams", .name = "leader", .kind = Kind::kString, .required = true,
        .check = Check::kRegionName, .reload = Reload::kLive,
        .doc = "Region that leads the stream: this region or one of the peers (changed by reload: a switchover).",
        .field = FIELD(c.streams[i].leader)},

    // [log]
    Key{.section = "log", .name = "level", .kind = Kind::kEnum, .default_toml = R"("info")",
        .choices = "trace|debug|info|warn|warning|error", .reload = Reload::kLive,
        .doc = "Least severe level logged (warn and warning name the same level).",
        .field = FIELD(c.log.level)},
    Key{.section = "log", .name = "format", .kind = Kind::kEnum, .default_toml = R"("text")",
        .choices = "text|json", .reload = Reload::kLive,
        .doc = "Line format: human-readable text, or one JSON object per line.",
        .field = FIELD(c.log.format)},

    // [process]
    Key{.section = "process", .name = "cpu_scheduling", .kind = Kind::kEnum, .default_toml = R"("batch")",
        .choices = "batch|inherit",
        .doc = "batch: every thread runs under SCHED_BATCH (waking up does not preempt the local "
               "nats-server); inherit: keep the policy the daemon was started with.",
        .field = FIELD(c.process.cpu_scheduling)},
};

#undef FIELD

// Renders a field as comparable text.
std::string render(const FieldRef& ref) {
  return std::visit(
      [](const auto* p) -> std::string {
        using T = std::remove_cv_t<std::remove_pointer_t<decltype(p)>>;
        if constexpr (std::is_same_v<T, std::string>) {
          return *p;
        } else if constexpr (std::is_same_v<T, Millis>) {
          return std::to_string(p->count());
        } else if constexpr (std::is_same_v<T, HostPort>) {
          return p->to_string();
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          std::string out;
          for (const auto& s : *p) out += s + '\n';
          return out;
        } else {
          return std::to_string(*p);
        }
      },
      ref);
}

size_t section_size(const Config& c, std::string_view section) {
  if (section == "peers") return c.peers.size();
  if (section == "streams") return c.streams.size();
  return 1;
}

}  // namespace

std::span<const Section> sections() { return kSections; }
std::span<const Key> keys() { return kKeys; }

const Section* find_section(std::string_view name) {
  for (const Section& s : kSections) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const Key* find_key(std::string_view section, std::string_view name) {
  for (const Key& k : kKeys) {
    if (k.section == section && k.name == name) return &k;
  }
  return nullptr;
}

std::string kind_name(const Key& key) {
  switch (key.kind) {
    case Kind::kString: return "string";
    case Kind::kInt: return "integer";
    case Kind::kDuration: return "duration";
    case Kind::kSize: return "size";
    case Kind::kHostPort: return "host:port";
    case Kind::kStringList: return "array of strings";
    case Kind::kEnum: return "string (" + std::string(key.choices) + ")";
  }
  return "?";
}

namespace {

// One difference between two configurations: a key of a plain section, a
// key of an element present in both (matched by identity), or an element
// added or removed.
struct Difference {
  std::string key;  // "link.listen", "streams[1].leader", "streams[4].name"
  const Key* k = nullptr;
  enum { kChanged, kAdded, kRemoved } what = kChanged;
  std::string identity;  // added or removed element's identity value
};

std::vector<Difference> differences(const Config& running, const Config& next) {
  Config a = running;  // the accessors take mutable configs
  Config b = next;
  std::vector<Difference> out;
  for (const Section& s : kSections) {
    std::vector<const Key*> ks;
    for (const Key& k : kKeys) {
      if (k.section == s.name) ks.push_back(&k);
    }
    if (!s.array) {
      for (const Key* k : ks) {
        if (render(k->field(a, 0)) != render(k->field(b, 0))) {
          out.push_back({std::string(s.name) + "." + std::string(k->name), k});
        }
      }
      continue;
    }
    const Key* id = ks.front();
    std::map<std::string, size_t> old_index;
    for (size_t i = 0; i < section_size(a, s.name); ++i) old_index[render(id->field(a, i))] = i;
    std::map<std::string, bool> still_there;
    for (size_t j = 0; j < section_size(b, s.name); ++j) {
      const std::string name = render(id->field(b, j));
      const std::string prefix = std::string(s.name) + "[" + std::to_string(j) + "].";
      auto it = old_index.find(name);
      if (it == old_index.end()) {
        out.push_back({prefix + std::string(id->name), id, Difference::kAdded, name});
        continue;
      }
      still_there[name] = true;
      for (const Key* k : ks) {
        if (render(k->field(a, it->second)) != render(k->field(b, j))) out.push_back({prefix + std::string(k->name), k});
      }
    }
    for (const auto& [name, i] : old_index) {
      if (!still_there.count(name)) {
        out.push_back({std::string(s.name) + "[" + std::to_string(i) + "]." + std::string(id->name), id,
                       Difference::kRemoved, name});
      }
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> reload_blockers(const Config& running, const Config& next) {
  std::vector<std::string> out;
  for (const Difference& d : differences(running, next)) {
    const bool ok = d.k->reload == Reload::kLive || (d.k->reload == Reload::kAddRemove && d.what != Difference::kChanged);
    if (!ok) out.push_back(d.key);
  }
  return out;
}

std::vector<std::string> changed_keys(const Config& running, const Config& next) {
  std::vector<std::string> out;
  for (const Difference& d : differences(running, next)) {
    switch (d.what) {
      case Difference::kChanged: out.push_back(d.key); break;
      case Difference::kAdded: out.push_back(d.key + " " + d.identity + " added"); break;
      case Difference::kRemoved: out.push_back(d.key + " " + d.identity + " removed"); break;
    }
  }
  return out;
}

}  // namespace isthmus::config
