// Link throughput benchmark (not a test): plain TCP, TLS 1.3 and TLS+S2 over
// a real loopback TCP connection, in the same run, interleaved.
//
// A sender thread encodes DATA frames carrying ~64 KiB batches of json_events
// (tests/bench/corpus.h), passes each through its LayerStack with flush (one
// S2 chunk per batch, as Connection::flush does) and writes the result to the
// socket; a receiver thread reads, passes the bytes through its LayerStack and
// a FrameReader, decodes every DATA frame and counts payload bytes. The TLS
// handshake runs in memory before the timed part (certificates are generated
// at start into a temp dir with the harness's TestCa).
//
// Reports per stack: payload MB/s (10^6 bytes/s, wall time from the first
// write to the receiver's EOF), CPU seconds per GB of payload (user+system,
// RUSAGE_THREAD of both threads) and wire bytes per payload byte; median and
// min-max over the repetitions.
//
// In the same run, interleaved with the link repetitions: what JetStream can
// store. One real nats-server (/usr/sbin/nats-server, file storage) takes the
// same json_events as asynchronous publishes (512 in flight, every ack
// checked) into one stream; reported as payload MB/s, and the ratio TLS+S2
// link MB/s / JetStream ingest MB/s (issue #4 asks >= 5: the link is never
// the bottleneck) next to TLS+S2 wire bytes per payload byte (asks < 0.40).
//
// Last, what smaller S2 chunks cost in ratio (send pacing on a slow link
// groups as little as 4 KiB of frames per chunk; link/connection.h): TLS+S2
// wire bytes per payload byte for DATA batches of 4..64 KiB, in memory.
//
// Usage: link-bench [--mib N] [--reps N] [--js-mib N]
//        (defaults: 256 MiB per link run, 5 reps, 32 MiB per JetStream run)

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "certs.h"
#include "corpus.h"
#include "jetstream.h"
#include "nats_server.h"
#include "link/frame.h"
#include "link/layer.h"
#include "link/s2_layer.h"
#include "tls/tls_context.h"
#include "tls/tls_layer.h"

namespace {

using isthmus::Status;
using isthmus::link::LayerStack;
using isthmus::tls::TlsContext;
using isthmus::tls::TlsLayer;
using Clock = std::chrono::steady_clock;

constexpr size_t kBatchBytes = 64 * 1024;
constexpr uint32_t kMaxFrame = 16u << 20;
constexpr size_t kReadBuf = 256 * 1024;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "link-bench: %s\n", what.c_str());
  std::exit(1);
}

void check(const Status& st, const char* what) {
  if (!st) die(std::string(what) + ": " + st.message());
}

double thread_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

enum class StackKind { kTcp, kTls, kTlsS2 };
const char* stack_name(StackKind k) {
  switch (k) {
    case StackKind::kTcp: return "tcp";
    case StackKind::kTls: return "tls";
    case StackKind::kTlsS2: return "tls+s2";
  }
  return "?";
}

// Pre-built DATA batches (~64 KiB of payload each), cycled by the sender.
struct Batches {
  std::vector<isthmus::link::Data> data;
  std::vector<size_t> payload;  // payload bytes per batch
};

Batches make_batches(size_t total_bytes, size_t batch_bytes = kBatchBytes) {
  Batches b;
  isthmus::bench::EventGenerator gen(1);
  size_t made = 0;
  while (made < total_bytes) {
    isthmus::link::Data d;
    d.stream = "COVENANT_EVENTS";
    d.epoch = 1;
    d.sub_id = 1;
    size_t bytes = 0;
    while (bytes < batch_bytes) {
      isthmus::link::Message m;
      m.subject = "covenant.events.iad";
      m.payload = gen.next_json_event();
      bytes += m.payload.size();
      d.msgs.push_back(std::move(m));
    }
    made += bytes;
    b.data.push_back(std::move(d));
    b.payload.push_back(bytes);
  }
  return b;
}

struct Pki {
  std::shared_ptr<TlsContext> a, b;
};

std::shared_ptr<TlsContext> load_ctx(const harness::CertFiles& f) {
  TlsContext::Options o;
  o.ca_file = f.ca;
  o.cert_file = f.cert;
  o.key_file = f.key;
  auto r = TlsContext::create(o);
  if (!r) die("TlsContext: " + r.status().message());
  return r.value();
}

// Builds the two stacks; TLS handshakes in memory until nothing moves.
void make_stacks(StackKind kind, const Pki& pki, LayerStack& snd, LayerStack& rcv) {
  if (kind == StackKind::kTcp) return;
  auto client = std::make_unique<TlsLayer>(pki.a, TlsLayer::Role::kClient, TlsLayer::Peer{{"b"}, {}});
  auto server = std::make_unique<TlsLayer>(pki.b, TlsLayer::Role::kServer, TlsLayer::Peer{{"a"}, {}});
  std::vector<uint8_t> c2s, s2c, app;
  check(client->start(c2s), "tls start");
  for (int i = 0; i < 100 && (!c2s.empty() || !s2c.empty()); ++i) {
    std::vector<uint8_t> out;
    if (!c2s.empty()) {
      check(server->read(c2s, app, out), "tls server handshake");
      c2s.clear();
      s2c.insert(s2c.end(), out.begin(), out.end());
      out.clear();
    }
    if (!s2c.empty()) {
      check(client->read(s2c, app, out), "tls client handshake");
      s2c.clear();
      c2s.insert(c2s.end(), out.begin(), out.end());
    }
  }
  if (!client->handshake_done() || !server->handshake_done()) die("TLS handshake did not complete");
  // Top (next to the frames) first: [S2,] TLS.
  if (kind == StackKind::kTlsS2) {
    const size_t limit = isthmus::link::s2_chunk_limit(kMaxFrame);
    snd.push_bottom(std::make_unique<isthmus::link::S2Layer>(isthmus::link::kS2LinkBlockSize, limit));
    rcv.push_bottom(std::make_unique<isthmus::link::S2Layer>(isthmus::link::kS2LinkBlockSize, limit));
  }
  snd.push_bottom(std::move(client));
  rcv.push_bottom(std::move(server));
}

void socket_pair(int& snd_fd, int& rcv_fd) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(lfd, 1) != 0 ||
      getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    die("bind/listen");
  snd_fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(snd_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("connect");
  rcv_fd = accept(lfd, nullptr, nullptr);
  if (rcv_fd < 0) die("accept");
  close(lfd);
  int one = 1;
  setsockopt(snd_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      die(std::string("write: ") + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

struct RunResult {
  double mbps = 0, cpu_s_per_gb = 0, wire_ratio = 0;
};

RunResult run_once(StackKind kind, const Pki& pki, Batches& batches, size_t target_bytes) {
  LayerStack snd_stack, rcv_stack;
  make_stacks(kind, pki, snd_stack, rcv_stack);
  int snd_fd = -1, rcv_fd = -1;
  socket_pair(snd_fd, rcv_fd);

  uint64_t sent_payload = 0, wire = 0, recv_payload = 0;
  double snd_cpu = 0, rcv_cpu = 0;
  Clock::time_point t_start, t_end;
  std::atomic<bool> go{false};

  std::thread receiver([&] {
    const double c0 = thread_cpu_s();
    std::vector<uint8_t> buf(kReadBuf), app, back;
    isthmus::link::FrameReader reader(kMaxFrame);
    isthmus::link::Data d;
    auto on_frame = [&](isthmus::link::FrameType t, std::span<const uint8_t> body) -> Status {
      if (t != isthmus::link::FrameType::kData) return Status::ok();
      d.msgs.clear();
      Status st = isthmus::link::decode(body, d);
      if (!st) return st;
      for (const auto& m : d.msgs) recv_payload += m.payload.size();
      return Status::ok();
    };
    for (;;) {
      ssize_t r = ::read(rcv_fd, buf.data(), buf.size());
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) die(std::string("read: ") + std::strerror(errno));
      if (r == 0) break;
      std::span<const uint8_t> in(buf.data(), static_cast<size_t>(r));
      if (rcv_stack.empty()) {
        check(reader.feed(in, on_frame), "frames");
      } else {
        app.clear();
        back.clear();
        check(rcv_stack.read(in, app, back), "receiver stack");
        if (!app.empty()) check(reader.feed(app, on_frame), "frames");
      }
    }
    t_end = Clock::now();
    rcv_cpu = thread_cpu_s() - c0;
  });

  std::thread sender([&] {
    while (!go.load()) std::this_thread::yield();
    const double c0 = thread_cpu_s();
    t_start = Clock::now();
    std::vector<uint8_t> frame, net;
    uint64_t seq = 1;
    size_t i = 0;
    while (sent_payload < target_bytes) {
      const size_t idx = i++ % batches.data.size();
      // Sequences keep increasing across the cycled batches.
      auto& d = batches.data[idx];
      for (auto& m : d.msgs) {
        m.seq = seq++;
        m.time_ns = static_cast<int64_t>(m.seq) * 1000;
      }
      d.leader_last_seq = seq - 1;
      frame.clear();
      isthmus::link::encode(d, frame);
      if (snd_stack.empty()) {
        write_all(snd_fd, frame.data(), frame.size());
        wire += frame.size();
      } else {
        net.clear();
        check(snd_stack.write(frame, true, net), "sender stack");
        write_all(snd_fd, net.data(), net.size());
        wire += net.size();
      }
      sent_payload += batches.payload[idx];
    }
    shutdown(snd_fd, SHUT_WR);
    snd_cpu = thread_cpu_s() - c0;
  });

  go.store(true);
  sender.join();
  receiver.join();
  close(snd_fd);
  close(rcv_fd);
  if (recv_payload != sent_payload) die("payload mismatch: sent " + std::to_string(sent_payload) + " received " + std::to_string(recv_payload));

  const double secs = std::chrono::duration<double>(t_end - t_start).count();
  RunResult r;
  r.mbps = static_cast<double>(sent_payload) / 1e6 / secs;
  r.cpu_s_per_gb = (snd_cpu + rcv_cpu) / (static_cast<double>(sent_payload) / 1e9);
  r.wire_ratio = static_cast<double>(wire) / static_cast<double>(sent_payload);
  return r;
}

// CPU seconds (user+system) of a process, from /proc/PID/stat.
double proc_cpu_s(pid_t pid) {
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (f == nullptr) return 0;
  char buf[2048];
  size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');  // after "(comm)" come fields 3..
  if (p == nullptr) return 0;
  unsigned long long ut = 0, st = 0;
  // fields 3..13 skipped, 14 utime, 15 stime
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return 0;
  return static_cast<double>(ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct JsResult {
  double mbps = 0, cpu_s_per_gb = 0;
};

// JetStream ingest: `bytes` of json_events published asynchronously into
// stream EVENTS; payload MB/s from the first publish to the last ack, and
// CPU seconds per GB of the nats-server process plus this process (the
// publisher and its cnats threads; nothing else runs meanwhile).
JsResult jetstream_once(harness::JetStream& js, pid_t server, isthmus::bench::EventGenerator& gen, size_t bytes) {
  std::vector<harness::OutMsg> msgs;
  size_t total = 0;
  while (total < bytes) {
    harness::OutMsg m;
    m.subject = "covenant.events.iad";
    m.payload = gen.next_json_event();
    total += m.payload.size();
    msgs.push_back(std::move(m));
  }
  const double c0 = proc_cpu_s(server) + self_cpu_s();
  auto t0 = Clock::now();
  auto acks = js.publish_bulk(msgs, 512, std::chrono::seconds(300));
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = proc_cpu_s(server) + self_cpu_s() - c0;
  for (const auto& a : acks)
    if (a.seq == 0 || a.duplicate) die("JetStream refused or duplicated a publish");
  return JsResult{static_cast<double>(total) / 1e6 / secs, cpu / (static_cast<double>(total) / 1e9)};
}

// TLS+S2 wire bytes per payload byte with DATA batches of `batch` bytes
// (one S2 chunk per batch), in memory.
double s2_ratio_at(const Pki& pki, size_t batch) {
  LayerStack snd, rcv;
  make_stacks(StackKind::kTlsS2, pki, snd, rcv);
  Batches b = make_batches(16u << 20, batch);
  uint64_t payload = 0, wire = 0;
  std::vector<uint8_t> frame, net;
  for (size_t i = 0; i < b.data.size(); ++i) {
    frame.clear();
    net.clear();
    isthmus::link::encode(b.data[i], frame);
    check(snd.write(frame, true, net), "sender stack");
    wire += net.size();
    payload += b.payload[i];
  }
  return static_cast<double>(wire) / static_cast<double>(payload);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 256;
  size_t js_mib = 32;
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--mib" && i + 1 < argc) {
      mib = std::strtoul(argv[++i], nullptr, 10);
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else if (a == "--js-mib" && i + 1 < argc) {
      js_mib = std::strtoul(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: link-bench [--mib N] [--reps N] [--js-mib N]\n");
      return 2;
    }
  }
  if (mib == 0 || reps < 1) die("bad arguments");

  char tmpl[] = "/tmp/link-bench-XXXXXX";
  if (!mkdtemp(tmpl)) die("mkdtemp");
  const std::string dir = tmpl;
  Pki pki;
  pki.a = load_ctx(harness::region_certs(dir, "a"));
  pki.b = load_ctx(harness::region_certs(dir, "b"));

  // 32 MiB of distinct events, cycled (each S2 chunk is independent per batch).
  Batches batches = make_batches(32u << 20);
  const size_t target = mib << 20;

  // One real nats-server with a file-storage stream for the ingest runs.
  harness::NatsServer nats("bench", dir);
  nats.start();
  harness::JetStream js(nats.url());
  js.create_stream({{"name", "EVENTS"},
                    {"subjects", {"covenant.events.>"}},
                    {"storage", "file"},
                    {"num_replicas", 1},
                    {"retention", "limits"},
                    {"discard", "old"}});
  isthmus::bench::EventGenerator js_gen(7);

  const StackKind kinds[] = {StackKind::kTcp, StackKind::kTls, StackKind::kTlsS2};
  std::vector<RunResult> results[3];
  std::vector<double> js_mbps, js_cpu, ratio;
  for (int rep = 0; rep < reps; ++rep) {
    for (int j = 0; j < 4; ++j) {
      const int k = (rep + j) % 4;  // rotate the order each round; 3 = JetStream
      if (k == 3) {
        JsResult v = jetstream_once(js, nats.process().pid(), js_gen, js_mib << 20);
        std::fprintf(stderr, "rep %d %-9s %8.1f MB/s %6.2f CPU s/GB\n", rep + 1, "jetstream", v.mbps,
                     v.cpu_s_per_gb);
        js_mbps.push_back(v.mbps);
        js_cpu.push_back(v.cpu_s_per_gb);
        continue;
      }
      RunResult r = run_once(kinds[k], pki, batches, target);
      std::fprintf(stderr, "rep %d %-9s %8.0f MB/s %6.2f CPU s/GB %6.3f wire/payload\n", rep + 1,
                   stack_name(kinds[k]), r.mbps, r.cpu_s_per_gb, r.wire_ratio);
      results[k].push_back(r);
    }
    // The same round's TLS+S2 link against the same round's ingest.
    ratio.push_back(results[2].back().mbps / js_mbps.back());
  }

  std::printf("%d interleaved repetitions of %zu MiB json_events payload, %zu KiB batches; median (min-max)\n\n",
              reps, mib, kBatchBytes / 1024);
  std::printf("| stack | payload MB/s | CPU s per GB payload | wire bytes per payload byte |\n");
  std::printf("|---|---:|---:|---:|\n");
  for (int k = 0; k < 3; ++k) {
    std::vector<double> mb, cpu, wr;
    for (const auto& r : results[k]) {
      mb.push_back(r.mbps);
      cpu.push_back(r.cpu_s_per_gb);
      wr.push_back(r.wire_ratio);
    }
    auto mm = [](const std::vector<double>& v) { return std::minmax_element(v.begin(), v.end()); };
    auto [mb_lo, mb_hi] = mm(mb);
    auto [cpu_lo, cpu_hi] = mm(cpu);
    auto [wr_lo, wr_hi] = mm(wr);
    std::printf("| %s | %.0f (%.0f-%.0f) | %.2f (%.2f-%.2f) | %.3f (%.3f-%.3f) |\n", stack_name(kinds[k]),
                median(mb), *mb_lo, *mb_hi, median(cpu), *cpu_lo, *cpu_hi, median(wr), *wr_lo, *wr_hi);
  }
  {
    auto [lo, hi] = std::minmax_element(js_mbps.begin(), js_mbps.end());
    auto [rlo, rhi] = std::minmax_element(ratio.begin(), ratio.end());
    std::vector<double> wr, lcpu;
    for (const auto& r : results[2]) {
      wr.push_back(r.wire_ratio);
      lcpu.push_back(r.cpu_s_per_gb);
    }
    auto [clo, chi] = std::minmax_element(js_cpu.begin(), js_cpu.end());
    std::printf("\nJetStream ingest (nats-server, file storage, async publish of %zu MiB json_events, "
                "512 in flight): %.1f (%.1f-%.1f) MB/s, %.2f (%.2f-%.2f) CPU s/GB (server + publisher)\n",
                js_mib, median(js_mbps), *lo, *hi, median(js_cpu), *clo, *chi);
    std::printf("TLS+S2 link / JetStream ingest, per round: %.1fx (%.1f-%.1f) [target >= 5x]; "
                "TLS+S2 wire/payload %.3f [target < 0.40]\n",
                median(ratio), *rlo, *rhi, median(wr));
    std::printf("CPU per GB, JetStream ingest / TLS+S2 link (both ends): %.1fx (the link's throughput "
                "advantage at equal CPU, independent of machine load)\n",
                median(js_cpu) / median(lcpu));
  }
  std::printf("\nTLS+S2 wire bytes per payload byte by DATA batch (= S2 chunk) size:\n\n");
  std::printf("| batch | wire/payload |\n|---:|---:|\n");
  for (size_t kib : {4, 8, 16, 32, 64}) std::printf("| %zu KiB | %.3f |\n", kib, s2_ratio_at(pki, kib << 10));
  nats.stop();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
