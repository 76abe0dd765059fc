// isthmus-soak: a long run of random faults on a three-region mesh under
// continuous publishing, then every replica checked message for message.
// Not a test of the CI suite: run it with scripts/soak.sh (docs/benchmarks.md,
// "Soak").
//
// iad leads the seed's four streams (harness/seed_streams.h); ams and syd
// follow. Two links pass through fault proxies (ams dials iad, iad dials
// syd: the lower name dials); the run checks that they carry the links. A
// publisher writes into the three COVENANT_* streams at --rate msg/s
// (rounds of 7 messages every 100 ms; an application durable at iad that
// never reads keeps everything, so the interest streams hold every message,
// trimmed by their limits only) and a second one about 9,000 messages into
// ALERTS_INCIDENTS over the run (10,000 with discard new would refuse the
// publisher beyond).
//
// Faults, one at a time, chosen at random (--seed replays a run's choices,
// not its timing): kill -9 of any daemon and its restart after 0-3 s,
// SIGSTOP of any daemon for 1-8 s, a graceful restart (SIGTERM: must exit 0),
// SIGHUP, any nats-server restarted with its region's isthmusd stopped
// first, as the systemd unit does (the leader's with publishing paused
// meanwhile, as an application would see it), a follower's restarted with
// its isthmusd running ("under writes": nats-server 2.9 may drop the
// replicas' last writes, acknowledged; each replica the daemon then reports
// missing messages of is rebuilt, and an unreported loss fails the final
// check), a follower's stopped (SIGSTOP) for 1-8 s,
// and on either proxied link: down for 1-10 s, its connection reset, stalled
// for 2-12 s, slowed (delay, jitter, a 256 KB/s cap) for 10 s, or cut after a
// random number of bytes (the open connection only; the fault waits up to
// 60 s for the cut to happen); and one of the streams removed from any
// region's configuration by reload, and added back 1-8 s later; and a
// follower region removed from the other two's configuration by reload (its
// daemon left running) and added back 1-8 s later; and a switchover: a
// stream's leader moved from iad to a follower by reload in every region
// (publishing paused, as the procedure says), and 1-4 s later back to iad,
// whose limits are then restored and retention anchor deleted (the
// operator's part): every region follows each new leader, none diverges.
// Recovery, timed from the end of the fault:
// every link up again, then both followers holding, in every stream, what
// the leader held when the fault ended. Longer than --recovery-limit seconds
// fails the run. Then 2-6 s of quiet.
//
// Throughout (except while a blocking restart runs): every 250 ms a daemon
// that exited by itself or a publisher error fails the run; every second
// the followers' /v1/lag (a `diverged` replica fails the run, as does 30 s
// without an answer from a daemon no fault holds) and the daemons' resident
// memory. At the end: publishing stops, every replica
// must catch up and equal the leader's stream (sequence, subject, payload,
// headers per the header rule; first sequence, message count and deleted
// sequences), and every /healthz must be 200 within 30 s.
//
// Output: two lines per fault (what, and when it had recovered) on stderr,
// mixed with the fault proxies' own lines; a summary on stdout ending in
// `soak: PASS` or `soak: FAIL: reason`. Exit status 0 (pass), 1 (fail) or 2
// (usage, or nothing to run). The temporary directory (configs, logs,
// JetStream stores) is kept on failure or with --keep. Ctrl-C stops
// everything (the signal reaches every process of the run): the report so
// far, `soak: INTERRUPTED`, no replica check, exit status 1.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "faultproxy/proxy_client.h"
#include "harness.h"

using namespace harness;
using isthmus::test::FaultProxy;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kLeader = "iad";
const std::vector<std::string> kRegions = {"ams", kLeader, "syd"};
const std::vector<std::string> kFollowers = {"ams", "syd"};
constexpr uint64_t kCompareChunk = 50'000;  // messages read per side at a time in the final check

std::atomic<bool> g_interrupted{false};
void on_interrupt(int) { g_interrupted = true; }

struct Options {
  double minutes = 10;
  uint64_t seed = 0;
  unsigned rate = 800;
  double recovery_limit_s = 120;
  bool keep = false;
  std::string only;  // faults whose name contains this ("" = all)
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "isthmus-soak: %s\n"
               "usage: isthmus-soak [--minutes M (10)] [--seed N] [--rate MSGS_PER_S (800)] "
               "[--recovery-limit S (120)] [--only TEXT] [--keep]\n",
               why.c_str());
  std::exit(2);
}

// The faults, or those whose name contains `only`.
std::vector<std::string> fault_kinds(const std::string& only) {
  static const std::vector<std::string> all = {
      "daemon kill -9", "daemon SIGSTOP", "daemon SIGTERM restart", "daemon SIGHUP", "nats restart",
      "nats restart under writes", "nats SIGSTOP", "link down", "link reset", "link stall", "link slow",
      "link cut", "stream removed by reload", "region removed by reload", "switchover by reload"};
  std::vector<std::string> v;
  for (const auto& k : all)
    if (k.find(only) != std::string::npos) v.push_back(k);
  return v;
}

double parse_double(const std::string& opt, const std::string& v) {
  size_t pos = 0;
  double d = 0;
  try {
    d = std::stod(v, &pos);
  } catch (const std::exception&) {
    usage("bad value for " + opt + ": " + v);
  }
  if (pos != v.size() || !std::isfinite(d)) usage("bad value for " + opt + ": " + v);
  return d;
}

uint64_t parse_u64(const std::string& opt, const std::string& v) {
  size_t pos = 0;
  uint64_t n = 0;
  try {
    n = std::stoull(v, &pos);
  } catch (const std::exception&) {
    usage("bad value for " + opt + ": " + v);
  }
  if (pos != v.size() || v.empty() || v[0] == '-') usage("bad value for " + opt + ": " + v);
  return n;
}

Options parse(int argc, char** argv) {
  Options o;
  o.seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value for " + a);
      return argv[++i];
    };
    if (a == "--minutes") {
      o.minutes = parse_double(a, value());
    } else if (a == "--seed") {
      o.seed = parse_u64(a, value());
    } else if (a == "--rate") {
      o.rate = static_cast<unsigned>(std::min<uint64_t>(parse_u64(a, value()), 1'000'000));
    } else if (a == "--recovery-limit") {
      o.recovery_limit_s = parse_double(a, value());
    } else if (a == "--only") {
      o.only = value();
    } else if (a == "--keep") {
      o.keep = true;
    } else {
      usage("unknown option " + a);
    }
  }
  // ALERTS_INCIDENTS keeps messages for a day: a longer run would see its
  // first ones expire while the replicas are compared.
  if (o.minutes <= 0 || o.minutes > 1200) usage("--minutes must be in (0, 1200]");
  if (o.rate < 70 || o.rate > 20000) usage("--rate must be in [70, 20000]");
  if (o.recovery_limit_s < 10) usage("--recovery-limit must be at least 10");
  if (fault_kinds(o.only).empty()) usage("--only " + o.only + " matches no fault");
  return o;
}

// Resident set of a process in KiB (0 when it cannot be read).
uint64_t rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  return 0;
}

double since_s(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// "connections=2 ..." -> 2 (0 when absent).
uint64_t reply_field(const std::string& reply, const std::string& key) {
  size_t p = reply.find(key + "=");
  return p == std::string::npos ? 0 : std::strtoull(reply.c_str() + p + key.size() + 1, nullptr, 10);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Ctrl-C: the terminal's SIGINT reaches the nats-servers and daemons too
// (one process group), so the run stops without the replica check.
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

class Soak {
 public:
  Soak(const Options& o, TempDir& tmp) : opt_(o), tmp_(tmp), rng_(o.seed) {}

  void run();
  void report(const std::string& verdict);

 private:
  struct Link {
    std::string name;  // "ams->iad": the dialer, then the listener
    std::string dialer;
    std::unique_ptr<FaultProxy> proxy;
  };
  // One process of a daemon, from its start to its end.
  struct Life {
    pid_t pid = 0;
    double start_min = 0, last_min = 0;
    uint64_t rss_1min_kib = 0;  // first sample a minute or more into its life
    uint64_t rss_last_kib = 0;
  };
  struct Memory {
    uint64_t peak_kib = 0;
    std::vector<Life> lives;
  };

  void setup();
  void watch_for(std::chrono::milliseconds d);
  void sample();
  void check_lag(const std::string& follower);
  bool links_up(std::string& state);
  void await_recovery(const std::string& key);
  void inject();
  void finish();
  void compare(const std::string& stream, const std::string& follower, const StreamInfo& leader);
  void repair_lost_tails(const std::string& follower);
  std::unique_ptr<FaultProxy> proxy_to(uint16_t port);
  Region& region(const std::string& n) { return (*mesh_)[n]; }
  std::string proxy_cmd(Link& l, const std::string& line);
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng_)];
  }
  double uniform(double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng_); }
  double run_min() const { return since_s(run_start_) / 60.0; }
  void log(const std::string& line) {
    std::fprintf(stderr, "[%7.1f s] %s\n", since_s(run_start_), line.c_str());
    std::fflush(stderr);
  }

  Options opt_;
  TempDir& tmp_;
  std::mt19937_64 rng_;
  std::unique_ptr<Mesh> mesh_;
  std::vector<Link> links_;
  // The publishers into iad: replaced when iad's nats-server restarts
  // (publishing pauses meanwhile, as an application's would); base_ counts
  // what the replaced ones published, per stream and in all.
  std::unique_ptr<StreamPublisher> pub_, alerts_;
  std::vector<PublishTarget> covenant_targets_, alerts_targets_;
  std::map<std::string, uint64_t> base_;
  uint64_t base_total_ = 0;
  unsigned rounds_ = 0;
  std::chrono::milliseconds alerts_every_{0};
  uint64_t published(const std::string& stream) const {
    auto it = base_.find(stream);
    return (it == base_.end() ? 0 : it->second) + pub_->published(stream) + alerts_->published(stream);
  }
  uint64_t published_total() const {
    return base_total_ + (pub_ ? pub_->published() : 0) + (alerts_ ? alerts_->published() : 0);
  }
  void stop_publishers();
  void start_publishers();
  unsigned rate_ = 0;  // what the COVENANT_* publisher is set to
  Clock::time_point run_start_ = Clock::now();
  Clock::time_point last_state_check_{}, last_rss_{};
  std::map<std::string, Clock::time_point> last_answer_;  // per follower: last /v1/lag answered
  std::set<std::string> daemon_away_;                     // held down or stopped by a fault
  std::map<std::string, Memory> memory_;
  std::map<std::string, std::vector<double>> recoveries_;  // by fault and target
  std::vector<std::string> not_applied_;                   // faults that found nothing to hit
  double longest_shutdown_s_ = 0;
  uint64_t lost_tails_ = 0;  // replicas the daemon reported missing messages of (then rebuilt)
  uint64_t faults_ = 0;
  std::vector<std::string> checked_;
};

std::unique_ptr<FaultProxy> Soak::proxy_to(uint16_t port) {
  auto fp = FaultProxy::start(FaultProxy::default_executable(), "127.0.0.1:" + std::to_string(port));
  if (!fp.is_ok()) throw Failure("faultproxy: " + fp.status().message());
  return std::move(*fp);
}

std::string Soak::proxy_cmd(Link& l, const std::string& line) {
  auto r = l.proxy->command(line);
  if (!r.is_ok()) throw Failure("faultproxy of " + l.name + ": " + r.status().message());
  return *r;
}

bool Soak::links_up(std::string& st) {
  st.clear();
  bool all = true;
  for (const auto& n : kRegions) {
    HttpResponse r;
    try {
      r = region(n).daemon.http_get("/v1/links", 2s);
    } catch (const std::exception& e) {
      st += n + ": " + e.what() + "; ";
      all = false;
      continue;
    }
    size_t up = 0;
    if (r.status == 200) {
      const json j = json::parse(r.body);
      for (const auto& l : j.at("links")) up += l.value("state", "") == "up";
    }
    if (up != 2) {
      st += n + ": " + std::to_string(up) + " of 2 links up; ";
      all = false;
    }
  }
  return all;
}

void Soak::setup() {
  std::vector<IsthmusdConfig::Stream> streams;
  for (const auto& s : seed_streams()) streams.push_back({s.name, kLeader});
  mesh_ = std::make_unique<Mesh>(tmp_, kRegions, streams);
  links_.push_back({"ams->iad", "ams", proxy_to(region("iad").daemon.config().link_port)});
  links_.push_back({"iad->syd", "iad", proxy_to(region("syd").daemon.config().link_port)});
  for (auto& p : region("ams").daemon.config().peers)
    if (p.name == "iad") p.address = links_[0].proxy->listen_address();
  for (auto& p : region("iad").daemon.config().peers)
    if (p.name == "syd") p.address = links_[1].proxy->listen_address();
  region("ams").daemon.write_config();
  region("iad").daemon.write_config();

  mesh_->start_nats();
  Region& iad = region(kLeader);
  create_seed_streams(iad.js());
  for (const auto& s : seed_streams())
    (s.discard == "new" ? alerts_targets_ : covenant_targets_).push_back({s.name, s.subjects, s.weight});
  mesh_->start_daemons();
  check_for(30s, [&](std::string& st) { return links_up(st); }, "full mesh of links up");
  // The proxies must carry the links, or every link fault would hit nothing.
  for (auto& l : links_) {
    const std::string st = proxy_cmd(l, "stats");
    if (reply_field(st, "active") < 1) throw Failure("the link " + l.name + " does not pass its proxy: " + st);
  }

  // Rounds of 7 messages (weights 3, 2, 2) every 100 ms.
  rounds_ = opt_.rate / 70;
  rate_ = rounds_ * 70;
  // About 9,000 ALERTS_INCIDENTS messages over 90% of the run.
  const double spread_ms = opt_.minutes * 60'000 * 0.9;
  alerts_every_ = std::chrono::milliseconds(std::max<int64_t>(5, static_cast<int64_t>(spread_ms / 9000)));
  start_publishers();
}

void Soak::stop_publishers() {
  try {
    pub_->stop();
    alerts_->stop();
  } catch (const std::exception& e) {
    throw Failure(std::string("publisher: ") + e.what());
  }
}

// (Again) from each stream's last sequence; event numbers go on past every
// earlier publisher's (Nats-Msg-Id values stay unique).
void Soak::start_publishers() {
  if (pub_) {
    for (const auto& t : covenant_targets_) base_[t.stream] += pub_->published(t.stream);
    for (const auto& t : alerts_targets_) base_[t.stream] += alerts_->published(t.stream);
    base_total_ += pub_->published() + alerts_->published();
    pub_.reset();
    alerts_.reset();
  }
  const std::string url = region(kLeader).nats.url();
  pub_ = std::make_unique<StreamPublisher>(url, covenant_targets_, rounds_, 100ms, 0, base_total_);
  uint64_t alerts_done = 0;
  for (const auto& t : alerts_targets_) alerts_done += base_[t.stream];
  // (A limit of 0 would mean none: one more message at most then.)
  alerts_ = std::make_unique<StreamPublisher>(url, alerts_targets_, 1, alerts_every_,
                                              std::max<uint64_t>(1, 9000 - std::min<uint64_t>(alerts_done, 8999)),
                                              base_total_);
}

void Soak::check_lag(const std::string& f) {
  const auto now = Clock::now();
  if (!last_answer_.count(f)) last_answer_[f] = now;
  HttpResponse r;
  try {
    r = region(f).daemon.http_get("/v1/lag", 2s);
  } catch (const std::exception& e) {
    r.status = 0;
    r.body = e.what();
  }
  if (r.status != 200) {
    if (now - last_answer_[f] > 30s)
      throw Failure("isthmusd " + f + " has not answered /v1/lag for 30 s (last: " + std::to_string(r.status) + " " +
                    r.body + ")");
    return;
  }
  last_answer_[f] = now;
  const json j = json::parse(r.body);
  for (const auto& s : j.value("streams", json::array()))
    if (s.value("state", "") == "diverged")
      throw Failure(f + " " + s.value("stream", "?") + " diverged: " + s.value("detail", "") + "; log tail:\n" +
                    region(f).daemon.log_tail(30));
}

void Soak::sample() {
  if (g_interrupted) throw Interrupted();
  if (pub_->failed() || alerts_->failed()) {
    stop_publishers();  // throws the publisher's error
    throw Failure("a publisher failed");
  }
  const auto now = Clock::now();
  for (const auto& n : kRegions) {
    Isthmusd& d = region(n).daemon;
    if (daemon_away_.count(n)) continue;
    if (!d.running())
      throw Failure("isthmusd " + n + " exited by itself (" +
                    (d.process().status() ? d.process().status()->to_string() : std::string("?")) +
                    "); log tail:\n" + d.log_tail(30));
  }
  if (now - last_rss_ >= 1s) {
    last_rss_ = now;
    const double m = run_min();
    for (const auto& n : kRegions) {
      Isthmusd& d = region(n).daemon;
      if (daemon_away_.count(n) || !d.running()) continue;
      const uint64_t k = rss_kib(d.process().pid());
      if (k == 0) continue;
      Memory& mem = memory_[n];
      mem.peak_kib = std::max(mem.peak_kib, k);
      if (mem.lives.empty() || mem.lives.back().pid != d.process().pid()) mem.lives.push_back({d.process().pid(), m, m});
      Life& l = mem.lives.back();
      l.last_min = m;
      l.rss_last_kib = k;
      if (l.rss_1min_kib == 0 && m - l.start_min >= 1) l.rss_1min_kib = k;
    }
  }
  if (now - last_state_check_ >= 1s) {
    last_state_check_ = now;
    for (const auto& f : kFollowers)
      if (!daemon_away_.count(f)) check_lag(f);
      else last_answer_.erase(f);
  }
}

void Soak::watch_for(std::chrono::milliseconds d) {
  const auto until = Clock::now() + d;
  while (Clock::now() < until) {
    sample();
    std::this_thread::sleep_for(std::min<Clock::duration>(250ms, until - Clock::now()));
  }
}

// Recovery from a fault that just ended: every link up, then both followers
// holding, in every stream, what the leader held now. Recorded under `key`.
void Soak::await_recovery(const std::string& key) {
  Region& iad = region(kLeader);
  std::map<std::string, uint64_t> mark;
  for (const auto& s : seed_streams()) mark[s.name] = iad.js().require_stream_info(s.name).last_seq;
  const auto t0 = Clock::now();
  const auto limit = ms(opt_.recovery_limit_s);
  std::string state;
  auto give_up = [&](const std::string& what) {
    std::string lags;
    for (const auto& f : kFollowers) {
      try {
        lags += "\n" + f + " /v1/lag: " + region(f).daemon.http_get("/v1/lag", 2s).body;
      } catch (const std::exception& e) {
        lags += "\n" + f + " /v1/lag unreachable: " + e.what();
      }
    }
    throw Failure(what + " " + std::to_string(static_cast<int>(opt_.recovery_limit_s)) + " s after " + key + ": " +
                  state + lags);
  };
  while (!links_up(state)) {
    sample();
    if (Clock::now() - t0 > limit) give_up("links not up");
    std::this_thread::sleep_for(100ms);
  }
  while (true) {
    sample();
    state.clear();
    for (const auto& f : kFollowers)
      for (const auto& s : seed_streams()) {
        uint64_t l = 0;
        try {
          auto i = region(f).js().stream_info(s.name);
          l = i ? i->last_seq : 0;
        } catch (const std::exception& e) {
          state += f + "/" + s.name + ": " + e.what() + "; ";
          continue;
        }
        if (l < mark[s.name])
          state += f + "/" + s.name + " at " + std::to_string(l) + " of " + std::to_string(mark[s.name]) + "; ";
      }
    if (state.empty()) break;
    if (Clock::now() - t0 > limit) give_up("followers not caught up");
    std::this_thread::sleep_for(100ms);
  }
  const double s = since_s(t0);
  recoveries_[key].push_back(s);
  char b[64];
  std::snprintf(b, sizeof b, "  recovered in %.1f s", s);
  log(b);
}

void Soak::inject() {
  const std::string kind = pick(fault_kinds(opt_.only));
  char d[160];
  std::string key = kind;
  if (kind == "stream removed by reload") {
    // One region stops replicating a stream for a while and takes it back:
    // a follower resumes from its replica; the leader tells its followers,
    // deletes its readers and, added back, serves them from their replicas
    // again (the application durable keeps every message meanwhile).
    const std::string n = pick(kRegions);
    key += n == kLeader ? " (leader)" : " (follower)";
    Isthmusd& dm = region(n).daemon;
    auto& streams = dm.config().streams;
    const auto saved = streams;
    const size_t i = std::uniform_int_distribution<size_t>(0, streams.size() - 1)(rng_);
    const double away = uniform(1, 8);
    std::snprintf(d, sizeof d, "%s: %s at %s, added back after %.1f s", kind.c_str(), streams[i].name.c_str(),
                  n.c_str(), away);
    log(d);
    streams.erase(streams.begin() + static_cast<std::ptrdiff_t>(i));
    dm.write_config();
    dm.process().signal(SIGHUP);
    watch_for(ms(away));
    streams = saved;
    dm.write_config();
    dm.process().signal(SIGHUP);
  } else if (kind == "region removed by reload") {
    // A follower region taken out of the mesh for a while (its [[peers]]
    // table removed at the two others, its own daemon left running) and
    // added back: the leader drops its readers and deletes its durables,
    // and it resumes from its replicas (the application durable kept every
    // message meanwhile).
    const std::string n = pick(kFollowers);
    key += " (" + n + ")";
    const double away = uniform(1, 8);
    std::snprintf(d, sizeof d, "%s: %s removed at the other two, added back after %.1f s", kind.c_str(), n.c_str(),
                  away);
    log(d);
    std::map<std::string, std::vector<IsthmusdConfig::Peer>> saved;
    for (const auto& o : kRegions) {
      if (o == n) continue;
      Isthmusd& dm = region(o).daemon;
      auto& peers = dm.config().peers;
      saved[o] = peers;
      peers.erase(std::remove_if(peers.begin(), peers.end(), [&](const auto& p) { return p.name == n; }),
                  peers.end());
      dm.write_config();
      dm.process().signal(SIGHUP);
    }
    watch_for(ms(away));
    for (auto& [o, peers] : saved) {
      Isthmusd& dm = region(o).daemon;
      dm.config().peers = peers;
      dm.write_config();
      dm.process().signal(SIGHUP);
    }
  } else if (kind == "switchover by reload") {
    const std::string to = pick(kFollowers);
    key += " (" + to + ")";
    const auto& at_iad = region(kLeader).daemon.config().streams;
    const std::string name = at_iad[std::uniform_int_distribution<size_t>(0, at_iad.size() - 1)(rng_)].name;
    const double away = uniform(1, 4);
    std::snprintf(d, sizeof d, "%s: %s from iad to %s, back after %.1f s (publishing paused)", kind.c_str(),
                  name.c_str(), to.c_str(), away);
    log(d);
    stop_publishers();
    const json config = region(kLeader).js().require_stream_info(name).raw["config"];
    const uint64_t last = region(kLeader).js().require_stream_info(name).last_seq;
    // Until `leader`'s rows for the other two read `replicating`, caught
    // up to `last`, with no region's replica of the stream diverged.
    auto await_following = [&](const std::string& leader, const std::string& when) {
      const auto t0 = Clock::now();
      std::string state;
      while (true) {
        sample();
        state.clear();
        for (const auto& n : kRegions) {
          auto e = region(n).daemon.lag_stream(name);
          if (e && e->value("state", "") == "diverged")
            throw Failure(n + " " + name + " diverged (" + leader + " leading, " + when + "): " + e->value("detail", "") +
                          "; log tail:\n" + region(n).daemon.log_tail(30));
        }
        auto e = region(leader).daemon.lag_stream(name);
        size_t ok = 0;
        if (e && e->value("role", "") == "leader")
          for (const auto& f : e->value("followers", json::array()))
            if (f.value("state", "") == "replicating" && f.value("applied_seq", json()).is_number() &&
                f["applied_seq"].get<uint64_t>() >= last)
              ++ok;
        if (ok == 2) {
          char b[96];
          std::snprintf(b, sizeof b, "  %s leads it: both other regions follow it, caught up, %.1f s %s",
                        leader.c_str(), since_s(t0), when.c_str());
          log(b);
          break;
        }
        state = e ? e->dump() : std::string("not listed");
        if (Clock::now() - t0 > ms(opt_.recovery_limit_s))
          throw Failure("switchover of " + name + " (" + leader + " leading) not done after " +
                        std::to_string(static_cast<int>(opt_.recovery_limit_s)) + " s " + when + ": " + state);
        std::this_thread::sleep_for(100ms);
      }
    };
    // In every region, the old leader first (the procedure's step 3).
    auto switch_to = [&](const std::string& leader, const std::string& from) {
      std::vector<std::string> order = {from, leader};
      for (const auto& n : kRegions)
        if (n != from && n != leader) order.push_back(n);
      for (const auto& n : order) {
        Isthmusd& dm = region(n).daemon;
        for (auto& st : dm.config().streams)
          if (st.name == name) st.leader = leader;
        dm.write_config();
        dm.process().signal(SIGHUP);
      }
      await_following(leader, "after the reloads");
    };
    // The procedure's step 2: the new leader (and the third) hold
    // everything first.
    await_following(kLeader, "before the switchover");
    switch_to(to, kLeader);
    watch_for(ms(away));
    switch_to(kLeader, to);
    // The operator's part at iad (a leader's limits back; on an interest
    // stream the anchor deleted: the application durable keeps what it
    // has not read).
    region(kLeader).js().api("$JS.API.STREAM.UPDATE." + name, config);
    region(kLeader).js().api_any("$JS.API.CONSUMER.DELETE." + name + ".isthmus_retention_anchor", json::object());
    start_publishers();
  } else if (kind.rfind("daemon", 0) == 0) {
    const std::string n = pick(kRegions);
    key += n == kLeader ? " (leader)" : " (follower)";
    Isthmusd& dm = region(n).daemon;
    if (kind == "daemon kill -9") {
      const double down = uniform(0, 3);
      std::snprintf(d, sizeof d, "%s %s, restarted after %.1f s", kind.c_str(), n.c_str(), down);
      log(d);
      daemon_away_.insert(n);
      dm.kill9();
      watch_for(ms(down));
      dm.start();
      daemon_away_.erase(n);
    } else if (kind == "daemon SIGSTOP") {
      const double held = uniform(1, 8);
      std::snprintf(d, sizeof d, "%s %s for %.1f s", kind.c_str(), n.c_str(), held);
      log(d);
      daemon_away_.insert(n);
      dm.process().signal(SIGSTOP);
      watch_for(ms(held));
      dm.process().signal(SIGCONT);
      daemon_away_.erase(n);
    } else if (kind == "daemon SIGTERM restart") {
      log(kind + " " + n);
      daemon_away_.insert(n);
      const auto t = Clock::now();
      const ExitStatus st = dm.terminate();
      const double took = since_s(t);
      longest_shutdown_s_ = std::max(longest_shutdown_s_, took);
      if (!st.exited || st.code != 0)
        throw Failure("isthmusd " + n + " on SIGTERM: " + st.to_string() + " after " + std::to_string(took) +
                      " s; log tail:\n" + dm.log_tail(30));
      dm.start();
      daemon_away_.erase(n);
    } else {
      log(kind + " " + n);
      dm.process().signal(SIGHUP);
    }
  } else if (kind.rfind("nats", 0) == 0) {
    // The leader's server is only restarted (a stopped one would fail the
    // publisher's requests), with the daemon stopped first as the systemd
    // unit does (PartOf=nats-server.service). "Under writes" restarts a
    // follower's server with its daemon running, which nats-server 2.9 can
    // answer by dropping the replicas' last writes: the daemon must report
    // them (then rebuilt here), or the final check fails.
    const std::string n = kind == "nats restart" ? pick(kRegions) : pick(kFollowers);
    key += n == kLeader ? " (leader)" : " (follower)";
    Region& r = region(n);
    if (kind == "nats restart") {
      log(kind + " " + n + " with its isthmusd stopped first" +
          (n == kLeader ? std::string(", publishing paused meanwhile") : std::string()));
      if (n == kLeader) stop_publishers();
      daemon_away_.insert(n);
      const ExitStatus st = r.daemon.terminate();
      if (!st.exited || st.code != 0)
        throw Failure("isthmusd " + n + " on SIGTERM: " + st.to_string() + "; log tail:\n" + r.daemon.log_tail(30));
      r.drop_js();
      r.nats.restart();
      r.daemon.start();
      daemon_away_.erase(n);
      if (n == kLeader) start_publishers();
    } else if (kind == "nats restart under writes") {
      log(kind + " " + n);
      r.drop_js();
      r.nats.restart();
      ++faults_;
      await_recovery(key);
      repair_lost_tails(n);
      return;
    } else {
      const double held = uniform(1, 8);
      std::snprintf(d, sizeof d, "%s %s for %.1f s", kind.c_str(), n.c_str(), held);
      log(d);
      r.nats.process().signal(SIGSTOP);
      watch_for(ms(held));
      r.nats.process().signal(SIGCONT);
    }
  } else {
    Link& l = links_[std::uniform_int_distribution<size_t>(0, links_.size() - 1)(rng_)];
    key += " " + l.name;
    if (kind == "link down") {
      const double held = uniform(1, 10);
      const std::string r = proxy_cmd(l, "down");
      std::snprintf(d, sizeof d, "%s %s for %.1f s (%llu connection reset)", kind.c_str(), l.name.c_str(), held,
                    static_cast<unsigned long long>(reply_field(r, "reset")));
      log(d);
      watch_for(ms(held));
      proxy_cmd(l, "up");
    } else if (kind == "link reset") {
      const std::string r = proxy_cmd(l, "reset");
      const uint64_t n = reply_field(r, "reset");
      log(kind + " " + l.name + " (" + std::to_string(n) + " connection reset)");
      if (n == 0) {
        not_applied_.push_back(kind + " " + l.name + ": no connection open");
        return;
      }
    } else if (kind == "link stall") {
      const double held = uniform(2, 12);
      std::snprintf(d, sizeof d, "%s %s for %.1f s", kind.c_str(), l.name.c_str(), held);
      log(d);
      proxy_cmd(l, "stall both on");
      watch_for(ms(held));
      proxy_cmd(l, "stall both off");
    } else if (kind == "link slow") {
      const int delay = static_cast<int>(uniform(20, 150));
      std::snprintf(d, sizeof d, "%s %s for 10 s: %d ms each way, jitter 10 ms, 256 KB/s", kind.c_str(),
                    l.name.c_str(), delay);
      log(d);
      proxy_cmd(l, "set both delay_ms=" + std::to_string(delay) + " jitter_ms=10 rate_bps=262144");
      watch_for(10s);
      proxy_cmd(l, "clear");
    } else {
      const uint64_t bytes = static_cast<uint64_t>(uniform(1'000, 200'000));
      const uint64_t accepted = reply_field(proxy_cmd(l, "stats"), "accepted");
      const uint64_t armed = reply_field(proxy_cmd(l, "cut both " + std::to_string(bytes)), "connections");
      std::snprintf(d, sizeof d, "%s %s after %llu more bytes (%llu connection armed)", kind.c_str(), l.name.c_str(),
                    static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(armed));
      log(d);
      if (armed == 0) {
        not_applied_.push_back(kind + " " + l.name + ": no connection open");
        return;
      }
      // The cut has happened once the dialer has connected again.
      const auto t0 = Clock::now();
      while (reply_field(proxy_cmd(l, "stats"), "accepted") == accepted) {
        if (Clock::now() - t0 > 60s) {
          proxy_cmd(l, "clear");
          log("  not cut within 60 s (fewer bytes crossed); cancelled");
          not_applied_.push_back(kind + " " + l.name + ": fewer than " + std::to_string(bytes) + " bytes in 60 s");
          return;
        }
        watch_for(100ms);
      }
      log("  cut after " + std::to_string(static_cast<int>(since_s(t0) * 1000)) + " ms");
    }
  }
  ++faults_;
  await_recovery(key);
}

// After a follower's nats-server restarted under writes: every replica the
// daemon reports missing messages of is rebuilt, and must end with nothing
// missing.
void Soak::repair_lost_tails(const std::string& n) {
  Isthmusd& d = region(n).daemon;
  std::vector<std::string> lost;
  const json lag = d.lag();
  for (const auto& s : lag.value("streams", json::array()))
    for (const auto& f : s.value("followers", json::array()))
      if (f.contains("missing")) {
        lost.push_back(s.value("stream", ""));
        ++lost_tails_;
        log("  " + n + " " + lost.back() + ": the daemon reports " + f["missing"].dump() + " missing; rebuilding");
      }
  for (const auto& stream : lost) {
    const auto t0 = Clock::now();
    auto r = d.http_post("/v1/streams/" + stream + "/rebuild");
    if (r.status != 202) throw Failure(n + " rebuild of " + stream + ": " + std::to_string(r.status) + " " + r.body);
    std::string state;
    while (true) {
      sample();
      auto e = d.lag_stream(stream);
      state = e ? e->dump() : "absent";
      const json f = e ? e->value("followers", json::array()) : json::array();
      if (e && e->value("state", "") == "replicating" && !e->contains("rebuild") && !f.empty() &&
          !f[0].contains("missing"))
        break;
      if (Clock::now() - t0 > ms(opt_.recovery_limit_s))
        throw Failure(n + " " + stream + " not rebuilt within " + std::to_string(opt_.recovery_limit_s) + " s: " + state);
      std::this_thread::sleep_for(200ms);
    }
    char b[96];
    std::snprintf(b, sizeof b, "  rebuilt in %.1f s", since_s(t0));
    log(b);
  }
  if (!lost.empty()) await_recovery("rebuild after a lost tail");
}

void Soak::compare(const std::string& stream, const std::string& f, const StreamInfo& li) {
  Region& iad = region(kLeader);
  Region& r = region(f);
  uint64_t compared = 0;
  for (uint64_t from = li.first_seq; from <= li.last_seq && li.messages > 0; from += kCompareChunk) {
    const uint64_t to = std::min(li.last_seq, from + kCompareChunk - 1);
    auto lm = iad.js().read_range(stream, from, to, 256, 120s);
    auto fm = r.js().read_range(stream, from, to, 256, 120s);
    MirrorDiff diff = compare_streams(lm, fm, kLeader);
    if (!diff.ok() || diff.compared != lm.size())
      throw Failure(f + " " + stream + " in " + std::to_string(from) + ".." + std::to_string(to) + ": " +
                    diff.summary());
    compared += diff.compared;
  }
  if (compared != li.messages)
    throw Failure(f + " " + stream + ": compared " + std::to_string(compared) + " messages of the leader's " +
                  std::to_string(li.messages));
  checked_.push_back(f + " " + stream + ": " + std::to_string(compared) + " messages (" +
                     std::to_string(li.first_seq) + ".." + std::to_string(li.last_seq) + ")");
}

void Soak::finish() {
  stop_publishers();
  log("publishing stopped: " + std::to_string(published_total()) + " messages");
  check_for(ms(opt_.recovery_limit_s), [&](std::string& st) { return links_up(st); }, "every link up at the end");
  Region& iad = region(kLeader);
  for (const auto& s : seed_streams()) {
    const StreamInfo li = iad.js().require_stream_info(s.name, true);
    const uint64_t published = this->published(s.name);
    if (li.last_seq != published)
      throw Failure(s.name + ": the leader's last sequence " + std::to_string(li.last_seq) + " is not the " +
                    std::to_string(published) + " messages published");
    for (const auto& f : kFollowers) {
      Region& r = region(f);
      const auto t0 = Clock::now();
      while (true) {
        sample();
        std::optional<StreamInfo> i;
        try {
          i = r.js().stream_info(s.name);
        } catch (const std::exception&) {
        }
        if (i && i->last_seq == li.last_seq && i->first_seq == li.first_seq && i->messages == li.messages) break;
        if (since_s(t0) > opt_.recovery_limit_s)
          throw Failure(f + " " + s.name + " did not end at the leader's " + std::to_string(li.first_seq) + ".." +
                        std::to_string(li.last_seq) + " (" + std::to_string(li.messages) + " messages)" +
                        (i ? ": at " + std::to_string(i->first_seq) + ".." + std::to_string(i->last_seq) + " (" +
                                 std::to_string(i->messages) + ")"
                           : std::string()));
        std::this_thread::sleep_for(100ms);
      }
      const StreamInfo fi = r.js().require_stream_info(s.name, true);
      const std::string states = compare_stream_states(li, fi);
      if (!states.empty()) throw Failure(f + " " + s.name + ": stream state differs: " + states);
      compare(s.name, f, li);
    }
  }
  for (const auto& n : kRegions) {
    check_for(
        30s,
        [&](std::string& st) {
          auto h = region(n).daemon.http_get("/healthz", 2s);
          st = std::to_string(h.status) + " " + h.body;
          return h.status == 200;
        },
        n + " /healthz 200 at the end");
  }
}

void Soak::run() {
  setup();
  run_start_ = Clock::now();
  log(std::string("publishing ") + std::to_string(rate_) +
      " msg/s into the COVENANT_* streams and about 9,000 messages into ALERTS_INCIDENTS; seed " +
      std::to_string(opt_.seed));
  watch_for(5s);
  await_recovery("start");
  const auto end = run_start_ + ms(opt_.minutes * 60);
  while (Clock::now() < end) {
    inject();
    if (Clock::now() >= end) break;
    watch_for(ms(uniform(2, 6)));
  }
  finish();
}

void Soak::report(const std::string& verdict) {
  std::printf("soak: %.1f min (asked %.1f, then the final check), seed %llu, %u msg/s, %llu messages published, %llu faults\n",
              run_min(), opt_.minutes, static_cast<unsigned long long>(opt_.seed), rate_,
              static_cast<unsigned long long>(published_total()),
              static_cast<unsigned long long>(faults_));
  std::printf("\n| fault | times | recovered after, median s | max s |\n|---|---:|---:|---:|\n");
  for (const auto& [key, v] : recoveries_)
    if (key != "start")
      std::printf("| %s | %zu | %.1f | %.1f |\n", key.c_str(), v.size(), median(v), *std::max_element(v.begin(), v.end()));
  if (longest_shutdown_s_ > 0) std::printf("\nlongest graceful shutdown (SIGTERM to exit 0): %.2f s\n", longest_shutdown_s_);
  for (const auto& n : not_applied_) std::printf("not applied (nothing to hit): %s\n", n.c_str());
  std::printf("replicas that lost their last writes in a nats-server restart under writes (reported, rebuilt): %llu\n",
              static_cast<unsigned long long>(lost_tails_));
  std::printf(
      "\n| isthmusd | peak RSS MiB | processes | longest-lived process: minutes | its RSS MiB a minute in | at its "
      "end |\n|---|---:|---:|---:|---:|---:|\n");
  for (const auto& [n, mem] : memory_) {
    const Life* longest = nullptr;
    for (const auto& l : mem.lives)
      if (!longest || l.last_min - l.start_min > longest->last_min - longest->start_min) longest = &l;
    if (!longest) continue;
    char at_1min[32] = "-";
    if (longest->rss_1min_kib) std::snprintf(at_1min, sizeof at_1min, "%.1f", static_cast<double>(longest->rss_1min_kib) / 1024);
    std::printf("| %s | %.1f | %zu | %.1f | %s | %.1f |\n", n.c_str(), static_cast<double>(mem.peak_kib) / 1024,
                mem.lives.size(), longest->last_min - longest->start_min, at_1min,
                static_cast<double>(longest->rss_last_kib) / 1024);
  }
  if (!checked_.empty()) {
    std::printf("\nreplicas identical to the leader (sequence, subject, payload, headers):\n");
    for (const auto& c : checked_) std::printf("  %s\n", c.c_str());
  }
  std::printf("\nsoak: %s\n", verdict.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  try {
    Isthmusd::binary();  // throws naming what is missing
    if (FaultProxy::default_executable().empty()) throw std::runtime_error("ISTHMUS_BUILD_DIR is not set");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "isthmus-soak: %s (scripts/soak.sh sets it up)\n", e.what());
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGINT, on_interrupt);
  ::signal(SIGTERM, on_interrupt);
  TempDir tmp("isthmus-soak");
  if (opt.keep) tmp.keep();
  std::fprintf(stderr, "isthmus-soak: %s\n", tmp.path().c_str());
  Soak soak(opt, tmp);
  std::string verdict = "PASS";
  try {
    soak.run();
  } catch (const Interrupted&) {
    verdict = "INTERRUPTED (no replica check)";
  } catch (const std::exception& e) {
    verdict = std::string("FAIL: ") + e.what();
    set_test_failed(true);  // keeps the temp dir, prints the processes' log tails
  }
  soak.report(verdict);
  return verdict == "PASS" ? 0 : 1;
}
