// The daemon's configuration, as parsed and validated from TOML.
// Lifetime: a Config is a plain value; the app keeps the current one and
// replaces it on reload. Thread-safety: immutable once loaded; copy to share.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace isthmus::config {

using Millis = std::chrono::milliseconds;

struct HostPort {
  std::string host;  // IPv4/IPv6 literal or host name, without brackets
  uint16_t port = 0;
  std::string to_string() const;  // "host:port" ("[v6]:port" for IPv6)
};

struct Region {
  std::string name;       // [a-z0-9][a-z0-9_-]{0,31}
  int priority = 100;     // failover preference: lower is preferred, 1..1000
};

struct Nats {
  std::vector<std::string> urls{"nats://127.0.0.1:4222"};
  std::string credentials;        // path to a .creds file; empty = none
  int replicas = 1;               // in-cluster replicas of replica streams, 1..5
  Millis request_timeout{2000};   // JetStream API requests
  Millis reconnect_wait{250};     // first retry after a lost connection (doubles, max 5s)
  int64_t pending_bytes_limit = 8 * 1024 * 1024;   // per subscription, bytes
  int64_t reconcile_max_deleted = 100000;  // interior deletes above which a leader stops reading their list
};

struct Peer {
  std::string name;   // a region name, unique, not our own
  HostPort address;   // where that region's daemon listens for links
  std::string pin_sha256;          // optional: hex SHA-256 of its certificate's SubjectPublicKeyInfo
  std::string compression = "link";  // "link" (= link.compression), "s2" or "none"
};

// TLS material of this region (paths resolved against the config file's
// directory). Required as soon as there is a peer: links are always mutual TLS.
struct Tls {
  std::string ca;    // PEM CA certificate(s) that sign every region's certificate
  std::string cert;  // PEM certificate of this region; DNS SAN = region.name
  std::string key;   // PEM private key of cert
};

struct Link {
  HostPort listen{"127.0.0.1", 7422};
  uint32_t max_frame_bytes = 8 * 1024 * 1024;  // refused before allocation; 4 KiB..64 MiB
  uint32_t batch_bytes = 64 * 1024;            // target payload bytes per data frame
  uint32_t window_messages = 50000;            // unacked messages per (stream, follower)
  uint64_t window_bytes = 8 * 1024 * 1024;     // unacked bytes per (stream, follower)
  uint64_t peer_window_bytes = 32 * 1024 * 1024;  // unacked bytes per link, all streams
  Millis heartbeat_interval{1000};
  Millis stale_after{10000};                   // close a link that received nothing this long
  Millis handshake_timeout{5000};
  Millis backoff_min{100};
  Millis backoff_max{5000};
  std::string compression = "s2";              // "s2" | "none": S2 stream over TLS
  Tls tls;
};

struct Http {
  HostPort listen{"127.0.0.1", 7480};
};

struct Stream {
  std::string name;    // JetStream stream name
  std::string leader;  // region name that leads it (static for now)
};

struct Log {
  std::string level = "info";   // trace|debug|info|warn|error
  std::string format = "text";  // text|json
};

// The daemon process itself.
struct Process {
  std::string cpu_scheduling = "batch";  // batch|inherit (app/scheduling.h)
};

struct Config {
  std::string path;  // file it was loaded from
  Region region;
  Nats nats;
  Link link;
  std::vector<Peer> peers;
  Http http;
  std::vector<Stream> streams;
  Log log;
  Process process;

  const Peer* find_peer(const std::string& name) const;
  // Whether the link to `peer` is S2-compressed (its override or link.compression).
  bool compress_link(const Peer& peer) const;
};

// One problem found in a configuration file, with its position.
struct ConfigError {
  std::string file;
  int line = 0;     // 1-based; 0 when the key is missing altogether
  int column = 0;   // 1-based; 0 when unknown
  std::string key;  // dotted path, e.g. "peers[1].address"
  std::string message;
  std::string to_string() const;  // "FILE:LINE:COL: KEY: MESSAGE"
};

struct LoadResult {
  Config config;                   // valid only when errors is empty
  std::vector<ConfigError> errors; // every problem found, in file order
  bool ok() const { return errors.empty(); }
};

// Parses and validates a configuration file. Collects all errors rather than
// stopping at the first. Never throws.
LoadResult load_file(const std::string& path);
// Same, from text (path is used only in error messages).
LoadResult load_string(const std::string& text, const std::string& path);

}  // namespace isthmus::config
