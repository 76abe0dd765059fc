#include "proxied_pair.h"

#include <stdexcept>
#include <vector>

namespace harness {

namespace {

std::vector<IsthmusdConfig::Stream> pair_streams(const ProxiedPairOptions& o) {
  std::vector<IsthmusdConfig::Stream> streams{{o.stream, o.leader}};
  for (const auto& name : o.extra_streams) streams.push_back({name, o.leader});
  return streams;
}

}  // namespace

using isthmus::test::FaultProxy;
using nlohmann::json;

ProxiedPair::ProxiedPair(ProxiedPairOptions options)
    : opt(std::move(options)),
      tmp(opt.tmp_prefix),
      mesh(tmp, {opt.leader, opt.follower}, pair_streams(opt)) {
  if (!(opt.follower < opt.leader)) throw Fatal("ProxiedPair: the follower must sort first (it dials)");
  uint16_t leader_link = leader().daemon.config().link_port;
  std::vector<std::string> args;
  // --sockbuf: the proxy's own kernel buffers stay small (a bounded
  // bottleneck buffer); otherwise loopback auto-tuning lets the proxy's
  // receive buffer soak up megabytes behind a rate cap.
  if (opt.proxy_sockbuf > 0) args = {"--sockbuf", std::to_string(opt.proxy_sockbuf)};
  auto fp = FaultProxy::start(FaultProxy::default_executable(), "127.0.0.1:" + std::to_string(leader_link),
                              std::chrono::seconds(5), args);
  if (!fp.is_ok()) throw Fatal("faultproxy did not start: " + fp.status().message());
  proxy = std::move(*fp);
  for (auto& p : follower().daemon.config().peers)
    if (p.name == opt.leader) p.address = proxy->listen_address();
  for (const std::string& r : {opt.leader, opt.follower}) {
    mesh[r].daemon.config().link_extra = opt.link_extra;
    mesh[r].daemon.config().compression = opt.compression;
    mesh[r].daemon.write_config();
  }
}

json ProxiedPair::leader_stream_config() const {
  return {{"name", opt.stream},
          {"subjects", {"covenant.countries.created", "covenant.countries.updated", "covenant.countries.deleted"}},
          {"retention", "limits"},
          {"max_msgs", 1'000'000},
          {"storage", "file"},
          {"num_replicas", 1},
          {"discard", "old"}};
}

void ProxiedPair::start_nats() {
  mesh.start_nats();
  leader().js().create_stream(leader_stream_config());
  follower().js();  // connect before anything else happens
}

void ProxiedPair::start_daemons() {
  leader().daemon.start();
  follower().daemon.start();
  check_for(
      30s,
      [&](std::string& st) {
        json f = links(opt.follower), l = links(opt.leader);
        st = opt.follower + " " + f.dump() + "; " + opt.leader + " " + l.dump();
        return f.value("state", "") == "up" && l.value("state", "") == "up";
      },
      opt.leader + "<->" + opt.follower + " link up through the fault proxy");
}

json ProxiedPair::links(const std::string& region) {
  auto r = mesh[region].daemon.http_get("/v1/links", 2s);
  if (r.status != 200) throw std::runtime_error("/v1/links " + std::to_string(r.status) + " " + r.body);
  json j = json::parse(r.body);
  const std::string peer = region == opt.follower ? opt.leader : opt.follower;
  for (const auto& p : j.at("links"))
    if (p.value("peer", "") == peer) return p;
  throw std::runtime_error(region + ": no " + peer + " in /v1/links: " + r.body);
}

json ProxiedPair::lag_entry(const std::string& region) {
  auto s = mesh[region].daemon.lag_stream(opt.stream);
  if (!s) throw std::runtime_error(region + ": no " + opt.stream + " in /v1/lag");
  const json& fs = s->at("followers");
  if (!fs.is_array() || fs.size() != 1) throw std::runtime_error(region + ": followers " + fs.dump());
  json f = fs[0];
  f["stream_state"] = s->value("state", "");
  return f;
}

uint64_t ProxiedPair::replica_last() {
  auto i = follower().js().stream_info(opt.stream);
  return i ? i->last_seq : 0;
}

void ProxiedPair::await_replica(uint64_t target, std::chrono::milliseconds timeout,
                                std::chrono::milliseconds no_progress) {
  uint64_t best = 0;
  auto progress_at = Clock::now();
  check_for(
      timeout,
      [&](std::string& state) {
        leader().daemon.ensure_running("while replicating");
        follower().daemon.ensure_running("while replicating");
        uint64_t last = replica_last();
        if (last > target)
          throw Fatal("replica last_seq " + std::to_string(last) + " beyond " + std::to_string(target));
        auto lag = follower().daemon.lag_stream(opt.stream);
        if (lag && lag->value("state", "") == "diverged")
          throw Fatal(opt.follower + " reports diverged: " + lag->dump());
        if (last > best) {
          best = last;
          progress_at = Clock::now();
        }
        state = "replica last_seq " + std::to_string(last) + "; " + opt.follower + " lag " +
                (lag ? lag->dump() : "none");
        if (Clock::now() - progress_at > no_progress) throw Fatal("no replication progress; " + state);
        return last == target;
      },
      "replica " + opt.stream + " in " + opt.follower + " at last_seq " + std::to_string(target));
}

void ProxiedPair::await_replica_past(uint64_t seq) {
  check_for(
      30s,
      [&](std::string& st) {
        uint64_t l = replica_last();
        st = "replica last_seq " + std::to_string(l);
        return l >= seq;
      },
      "replica past seq " + std::to_string(seq));
}

std::pair<double, double> ProxiedPair::await_rtt() {
  std::pair<double, double> v{-1, -1};
  check_for(
      15s,
      [&](std::string& st) {
        json f = links(opt.follower), l = links(opt.leader);
        st = opt.follower + " " + f.dump() + "; " + opt.leader + " " + l.dump();
        if (!f.contains("rtt_ms") || !l.contains("rtt_ms")) return false;
        v = {f["rtt_ms"].get<double>(), l["rtt_ms"].get<double>()};
        return true;
      },
      "rtt_ms reported in /v1/links by " + opt.follower + " and " + opt.leader);
  return v;
}

}  // namespace harness
