// Two regions with the link between them routed through a fault proxy, for
// tests of the link under faults and of lag. The leader region leads one
// stream (COVENANT_COUNTRIES by default); the follower dials the leader's
// link port through a faultproxy (tests/tools/faultproxy):
//
//   follower --dials--> faultproxy (listen) --> leader's link port
//   a2b = follower -> leader (acks, the follower's heartbeats),
//   b2a = leader -> follower (data).
//
// The follower must be the dialer: the peer whose name sorts first dials
// (the defaults "ams" and "iad" do). The constructor only writes configs and
// starts the proxy (faults can be set before anything connects);
// start_nats() / start_daemons() (or start()) bring the rest up.
//
// Errors: throws like the rest of the harness (Fatal when the proxy does not
// start or a daemon dies while waiting). Thread: the test's thread.
// Lifetime: members are destroyed in reverse order (proxy, then daemons and
// nats-servers, then the temp dir).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include <utility>

#include <nlohmann/json.hpp>

#include "faultproxy/proxy_client.h"
#include "topology.h"
#include "util.h"

namespace harness {

struct ProxiedPairOptions {
  std::string tmp_prefix = "isthmus-pair";
  std::string stream = "COVENANT_COUNTRIES";
  std::string leader = "iad";
  std::string follower = "ams";  // sorts before the leader: the dialer
  std::string link_extra;        // TOML lines for [link] on both daemons
  std::string compression;       // link.compression on both ("": the default, s2)
  int proxy_sockbuf = 0;         // the proxy's --sockbuf (0: its default)
  std::vector<std::string> extra_streams;  // more streams the leader leads (the test creates them)
};

class ProxiedPair {
 public:
  explicit ProxiedPair(ProxiedPairOptions options = {});
  ProxiedPair(const ProxiedPair&) = delete;
  ProxiedPair& operator=(const ProxiedPair&) = delete;

  const ProxiedPairOptions opt;
  TempDir tmp;
  Mesh mesh;
  std::unique_ptr<isthmus::test::FaultProxy> proxy;

  Region& leader() { return mesh[opt.leader]; }
  Region& follower() { return mesh[opt.follower]; }

  // The leader's stream: three covenant.countries.* subjects, limits
  // retention, max_msgs 1,000,000, file storage, discard old.
  nlohmann::json leader_stream_config() const;

  // Both nats-servers; the leader's stream created; the follower's client
  // connected.
  void start_nats();
  // The leader's daemon, then the follower's (so that the follower's first
  // dial through the proxy finds the leader listening); waits up to 30 s
  // for the link to be up on both sides.
  void start_daemons();
  void start() {
    start_nats();
    start_daemons();
  }

  // `region`'s /v1/links entry for its one peer (throws if absent).
  nlohmann::json links(const std::string& region);
  // The one follower entry of `region`'s /v1/lag for the stream, with the
  // stream's state added as "stream_state" (throws if absent).
  nlohmann::json lag_entry(const std::string& region);
  // The replica's last sequence (0 when it does not exist yet).
  uint64_t replica_last();

  // Waits until the replica's last sequence is `target`; throws Fatal at
  // once if a daemon dies, the replica is diverged or beyond target, or
  // nothing moves for `no_progress`.
  void await_replica(uint64_t target, std::chrono::milliseconds timeout = std::chrono::seconds(60),
                     std::chrono::milliseconds no_progress = std::chrono::seconds(25));
  // Waits up to 30 s until the replica is at or past `seq`.
  void await_replica_past(uint64_t seq);
  // Waits up to 15 s until both sides report rtt_ms; returns {follower, leader}.
  std::pair<double, double> await_rtt();
};

}  // namespace harness
