// Manager: the set of links of this region, one per configured peer.
//
// Who dials: the region whose name sorts first dials; the other listens.
// So two regions never hold two links, and an incoming connection from a
// peer we should dial is refused (kWrongDirection). Dials back off
// exponentially with jitter between backoff_min and backoff_max. A peer's
// address that is a host name is resolved at each dial on libuv's thread
// pool, never on the loop, and its addresses are tried in turn.
//
// Security and compression: every connection runs TLS 1.3 with mutual
// authentication (tls/tls_layer.h); the dialer checks the certificate names
// the peer it dials, the listener learns the peer from the certificate and
// requires the HELLO to name the same region. The dialer sends HELLO first;
// the listener answers with its own. Both carry kHelloFlagS2 when the link
// is to be compressed; equal flags push the S2 layer on both ends right
// after the exchange, different ones close with kCompressionMismatch.
//
// Liveness: every heartbeat_interval each link sends a HEARTBEAT; a link that
// received nothing for stale_after is closed as stale, and one whose socket
// took none of the bytes waiting for it for stale_after (a peer that stopped
// reading) as send_stalled. Heartbeats also carry timestamps for a
// round-trip estimate.
//
// Thread: loop thread only. Lifetime: created after the loop, destroyed
// before it closes; shutdown() closes every link with kShutdown.
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "link/connection.h"
#include "loop/timer.h"
#include "tls/tls_context.h"

namespace isthmus::link {

// What the replication layer sees of links.
class LinkListener {
 public:
  virtual ~LinkListener() = default;
  virtual void on_link_up(const std::string& peer) = 0;
  virtual void on_link_down(const std::string& peer) = 0;
  // A replication frame (anything but hello/heartbeat/goaway) from a peer.
  virtual Status on_link_frame(const std::string& peer, FrameType type,
                               std::span<const uint8_t> body) = 0;
  // Called once per loop wakeup after frames were delivered (flush point).
  virtual void on_link_idle() {}
};

struct PeerStatus {
  std::string name;
  std::string address;
  std::string state;        // "up", "connecting", "waiting", "down"
  bool dialer = false;      // we dial this peer
  int64_t since_ns = 0;     // wall clock of the last state change
  int64_t rtt_ns = -1;      // last round-trip estimate, -1 unknown
  // Peer clock minus ours, from the heartbeat with the smallest round trip
  // among the last few (NTP-style); error bound is half that round trip.
  int64_t clock_offset_ns = 0;
  int64_t clock_offset_error_ns = -1;  // -1: no estimate yet
  bool compressed = false;
  // Send pacing (Connection::send_budget): measured drain rate in bytes/s
  // (0: not measured yet) and the current budget, while a connection exists.
  double drain_rate = 0;
  size_t send_budget = 0;
  size_t group_limit = 0;
  uint64_t frame_bytes_in = 0, frame_bytes_out = 0;  // before compression/TLS
  uint64_t reconnects = 0;  // links established after the first
  uint64_t bytes_in = 0, bytes_out = 0, frames_in = 0, frames_out = 0;
  std::string last_close_reason;
  std::string last_close_detail;
  int64_t last_close_ns = 0;
  // The close of the last connection that was up (why the link went down):
  // the failed dials that follow overwrite last_close_*, not these.
  std::string last_drop_reason;
  std::string last_drop_detail;
  int64_t last_drop_ns = 0;
  // Every close of a connection to this peer (also refusals during the
  // handshake of a connection we dialed), by close reason name.
  std::map<std::string, uint64_t> closes;
};

class Manager : public ConnectionHandler {
 public:
  Manager(uv_loop_t* loop, const config::Config& cfg, LinkListener* listener);
  ~Manager() override;
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  Status start();       // listen and begin dialing
  // SIGHUP: takes the reloadable link settings of `next` (timers, windows,
  // backoff; config/schema.cpp), each peer's address (the next dial
  // uses it; a link that is up stays) and the set of peers: a peer removed
  // is closed with kPeerRemoved (on_link_down() if its link was up) and
  // forgotten, one added is dialed or waited for. `next` differs from the
  // running configuration only in reloadable keys (config::reload_blockers).
  void reconfigure(const config::Config& next);
  void shutdown();      // close all links with kShutdown; stop dialing and listening
  uint16_t listen_port() const;

  bool is_up(const std::string& peer) const;
  // Queue a frame for a peer; dropped when the link is down (replication
  // resynchronises on link up). Returns false when dropped.
  bool send(const std::string& peer, std::vector<uint8_t>&& frame);
  // The same, ahead of the data frames not yet written (as heartbeats go):
  // for small reports that must not wait behind a backlog.
  bool send_priority(const std::string& peer, std::vector<uint8_t>&& frame);
  void flush_all();
  // Hands what is queued for one peer to its socket now, as far as send
  // pacing allows (Connection::flush), without waiting for flush_all().
  void flush(const std::string& peer);
  size_t pending_bytes(const std::string& peer) const;
  // The peer's clock minus ours and its error bound (see PeerStatus), without
  // building a whole status report. False while there is no estimate. The
  // estimate outlives link drops (clocks do not jump when a link does), but
  // is not given out again until the new link's first sample confirms it
  // (a peer may have restarted with its clock stepped).
  bool clock_offset(const std::string& peer, int64_t& offset_ns, int64_t& error_ns) const;
  // The standing estimate, also while a new link has not confirmed it yet:
  // for a figure that is better off with the last known offset than with
  // none (an age on a clock that is 30 s off). False while there is none.
  bool clock_offset_unconfirmed(const std::string& peer, int64_t& offset_ns) const;
  // How long a frame arriving from that peer now has waited, e.g. in a
  // congested path's queues: the peer's last heartbeat's transit (its send
  // time on our clock via the offset; within the offset's error), or more
  // once its next heartbeat is overdue (a queue that grows holds it: the
  // last one's transit would understate the wait). -1 while unknown (no
  // offset estimate, no heartbeat yet on this link).
  int64_t inbound_delay_ns(const std::string& peer) const;
  // Largest DATA frame worth building for a peer now: the connection's
  // group_limit() (small on a slow link so a heartbeat never waits behind a
  // big frame; Connection::flush), or `fallback` when the link is down.
  size_t frame_limit(const std::string& peer, size_t fallback) const;
  std::vector<PeerStatus> status() const;
  // Accepted connections closed before they identified a peer, by close
  // reason name (garbage, TLS refusals, handshake timeouts, ...).
  const std::map<std::string, uint64_t>& refused() const { return refused_; }
  // The last of them (reason empty: none yet): a listener learns no more of
  // a peer whose certificate it refuses.
  struct Refusal {
    std::string reason, detail, from;
    int64_t wall_ns = 0;
  };
  const Refusal& last_refused() const { return last_refused_; }

 private:
  struct Resolving;  // a host name being resolved (manager.cpp)
  struct Peer {
    config::Peer cfg;
    bool dialer = false;
    std::unique_ptr<Connection> conn;  // current connection, maybe not hello'd yet
    Resolving* resolving = nullptr;    // the address's host name, being resolved
    // Addresses of this dial not tried yet (a host name may give several).
    std::vector<sockaddr_storage> addrs;
    bool up = false;                   // hello exchanged
    std::unique_ptr<loop::Timer> dial_timer;
    uint64_t backoff_ms = 0;
    PeerStatus st;
    uint64_t established = 0;
    int64_t last_hb_send_ns = 0;
    int64_t peer_hb_send_ns = 0, peer_hb_recv_ns = 0;  // the peer's last heartbeat on the current link
    int64_t link_up_wall_ns = 0;       // when the current link came up (our clock)
    size_t samples_before_link = 0;    // samples kept from earlier links, until this one's first
    bool link_sampled = false;         // the current link has given a clock sample
    int quick_heartbeats = 0;          // sent at once on this link while it has none (at most 4)
    int64_t inbound_delay_ns = -1;  // the last heartbeat's transit (inbound_delay_ns())
    int64_t peer_hb_sent_local_ns = 0;  // the peer's last heartbeat's send time on our clock
    // Spacing of the peer's last regular heartbeats' send times (its
    // clock), kept across links: its interval, whatever our configuration
    // says.
    std::array<int64_t, 4> peer_hb_spacing_ns{};
    size_t peer_hb_spacing_next = 0;
    struct ClockSample {
      int64_t rtt_ns, offset_ns;
    };
    std::vector<ClockSample> samples;  // most recent last, at most kClockSamples
  };

  // ConnectionHandler
  void on_connected(Connection& c) override;
  Status on_frame(Connection& c, FrameType type, std::span<const uint8_t> body) override;
  void on_closed(Connection& c, CloseReason reason, const std::string& detail) override;

  static void on_accept(uv_stream_t* server, int status);
  void accept_one();
  void dial(Peer& p);
  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res);
  void abandon_resolve(Peer& p);
  void connect_next(Peer& p);  // the next of p.addrs, or the backoff when none is left
  void dial_failed(Peer& p, const std::string& detail);
  void schedule_dial(Peer& p);
  void send_hello(Connection& c, bool compress);
  // Queues a heartbeat ahead of data, echoing the peer's last one on this link.
  void send_heartbeat(Peer& p, int64_t now_wall_ns);
  int64_t last_tick_mono_ns_ = 0;  // tick(): a gap means this daemon did not run
  // Closes a connection from inside its own handling, with a goodbye, and
  // settles its slot (pending or peer) at once.
  void refuse(Connection& c, CloseReason reason, const std::string& detail);
  Status check_compression(Connection& c, const Hello& h, bool compress);
  std::unique_ptr<Layer> make_tls(bool client, const std::string& peer);
  Status handle_hello(Connection& c, std::span<const uint8_t> body);
  void link_closed(Peer& p, CloseReason reason, const std::string& detail);
  void tick();
  void start_tick();  // (re)starts the tick timer for the heartbeat interval
  Peer& add_peer(const config::Peer& pc);
  void remove_peer(const std::string& name);
  Peer* find(const std::string& name);
  const Peer* find(const std::string& name) const;
  void set_state(Peer& p, const char* state);

  uv_loop_t* loop_;
  config::Config cfg_;
  LinkListener* listener_;
  uv_tcp_t* server_ = nullptr;
  std::map<std::string, Peer> peers_;
  std::vector<std::unique_ptr<Connection>> pending_;  // accepted, awaiting hello
  // Connections closed from inside their own callbacks are parked here and
  // destroyed on the next loop turn, never while their code is on the stack.
  std::vector<std::unique_ptr<Connection>> graveyard_;
  std::unique_ptr<loop::Timer> tick_;
  uint64_t tick_period_ms_ = 0;
  std::unique_ptr<loop::Timer> reap_;
  bool shutting_down_ = false;
  std::shared_ptr<tls::TlsContext> tls_;
  std::map<std::string, uint64_t> refused_;
  Refusal last_refused_;
  // name_mismatch refusals by detail: warned at most once a minute each.
  static constexpr int64_t kRepeatedRefusalNs = 60'000'000'000;
  struct Repeated {
    int64_t warned_mono_ns = 0;
    uint64_t since = 0;  // refused quietly since
  };
  std::map<std::string, Repeated> repeated_refusals_;
  void note_refused(const Connection& c, CloseReason reason, const std::string& detail);
  void bury(std::unique_ptr<Connection> c);
};

}  // namespace isthmus::link
