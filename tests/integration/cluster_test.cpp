// Regions that are real nats-server clusters, as in production (the seed's
// three in-cluster replicas): iad and ams are each three nats-servers joined
// by routes, iad leads two R3 streams (EVENTS: limits retention; ORDERS:
// interest retention, an application durable that has not consumed), ams
// follows with nats.replicas = 3. Each daemon lists its cluster's servers in
// nats.urls (iad's daemon all but the publisher's server).
//
// While a publisher writes into both streams at iad, nodes are lost with
// SIGKILL and brought back:
//   1. ams: the node that leads ams's EVENTS replica (replica writes span a
//      stream leader election)
//   2. ams: the node ams's daemon is connected to (it moves to another)
//   2b. ams: the node ams's daemon then uses cut off from the other two
//      (ams's routes run through fault proxies): it stays up answering
//      "JetStream temporarily unavailable", and the daemon must leave it
//      for a node of the majority (replication/server_watch.h)
//   3. iad: the node iad's daemon is connected to (reading moves to another
//      node; the streams' leader stays on the publisher's node)
//   4. iad, publishing paused: the node that leads both streams, then
//      publishing resumes through another node
// Then every replica must hold exactly the leader's (sequence, subject,
// payload, headers per the header rule) with the same first/last sequence
// and count, be R3, and both daemons report healthy.
#include <cstdio>

#include <catch2/catch.hpp>

#include "faultproxy/proxy_client.h"
#include "harness.h"

using namespace harness;
using isthmus::test::FaultProxy;
using nlohmann::json;

namespace {

const std::vector<std::string> kStreams = {"EVENTS", "ORDERS"};

// A region of three clustered nats-servers and its daemon. With
// `partitionable`, each node dials each other node's route port through a
// fault proxy of its own (six in all) and advertises no address (so no
// route bypasses the proxies): partition() cuts one node off from the
// other two, whose route stays.
struct ClusterRegion {
  std::string name;
  std::vector<std::unique_ptr<NatsServer>> nodes;
  std::unique_ptr<Isthmusd> daemon;
  std::map<std::string, std::unique_ptr<JetStream>> clients;  // per node name
  std::map<std::pair<int, int>, std::unique_ptr<FaultProxy>> route_proxies;  // (from, to)

  ClusterRegion(TempDir& tmp, const std::string& region, bool partitionable = false) : name(region) {
    std::vector<uint16_t> route_ports;
    for (int i = 0; i < 3; ++i) route_ports.push_back(free_port());
    if (partitionable) {
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
          if (i == j) continue;
          auto fp = FaultProxy::start(FaultProxy::default_executable(), "127.0.0.1:" + std::to_string(route_ports[j]));
          if (!fp.is_ok()) throw Fatal("faultproxy: " + fp.status().message());
          route_proxies[{i, j}] = std::move(*fp);
        }
    }
    for (int i = 0; i < 3; ++i) {
      std::string n = region + "-" + std::string(1, static_cast<char>('a' + i));
      auto s = std::make_unique<NatsServer>(n, tmp.subdir(n));
      std::string routes;
      for (int j = 0; j < 3; ++j) {
        if (j == i) continue;
        std::string target = partitionable ? route_proxies[{i, j}]->listen_address()
                                           : "127.0.0.1:" + std::to_string(route_ports[j]);
        routes += std::string(routes.empty() ? "" : ", ") + "nats-route://" + target;
      }
      s->append_config("cluster {\n  name: " + region + "\n  listen: \"127.0.0.1:" + std::to_string(route_ports[i]) +
                       "\"\n  routes: [" + routes + "]\n" +
                       (partitionable ? "  no_advertise: true\n  advertise: \"127.0.0.1:1\"\n" : "") + "}");
      nodes.push_back(std::move(s));
    }
  }

  // Cuts node k off from the other two (open routes reset, new ones
  // refused), or joins it again.
  void partition(int k, bool cut) {
    for (auto& [pair, fp] : route_proxies)
      if (pair.first == k || pair.second == k) {
        isthmus::Status st = cut ? fp->down() : fp->up();
        if (!st.ok()) throw Fatal("faultproxy: " + st.message());
      }
  }
  int index_of(const std::string& n) const {
    for (size_t i = 0; i < nodes.size(); ++i)
      if (nodes[i]->name() == n) return static_cast<int>(i);
    throw Fatal("no node " + n + " in " + name);
  }

  NatsServer& node(const std::string& n) {
    for (auto& s : nodes)
      if (s->name() == n) return *s;
    throw Fatal("no node " + n + " in " + name);
  }

  // A client of one node (made on first use; reconnects to that node only).
  JetStream& js(const std::string& n) {
    auto& c = clients[n];
    if (!c) c = std::make_unique<JetStream>(node(n).url(), std::chrono::seconds(5));
    return *c;
  }
  void drop_client(const std::string& n) { clients.erase(n); }

  void start_nodes() {
    for (auto& s : nodes) s->spawn();
    for (auto& s : nodes) s->wait_ready(std::chrono::seconds(40));
  }

  // The stream's raw STREAM.INFO, asked through node n.
  json info(const std::string& via, const std::string& stream) {
    return js(via).api("$JS.API.STREAM.INFO." + stream, nullptr, std::chrono::seconds(3));
  }
  std::string stream_leader(const std::string& via, const std::string& stream) {
    json i = info(via, stream);
    return i.contains("cluster") ? i["cluster"].value("leader", "") : "";
  }
  // The node whose /connz lists a client named `client` ("isthmusd").
  std::string node_serving(const std::string& client) {
    for (auto& s : nodes) {
      if (!s->running()) continue;
      json c;
      try {
        c = s->connz();
      } catch (const std::exception&) {
        continue;
      }
      for (const auto& conn : c.value("connections", json::array()))
        if (conn.value("name", "") == client) return s->name();
    }
    return "";
  }
};

}  // namespace

TEST_CASE("clustered regions (R3): stream leader and connected node lost at both ends, every replica identical",
          "[cluster]") {
  TempDir tmp("isthmus-cluster");
  ClusterRegion iad(tmp, "iad"), ams(tmp, "ams", true);

  // The daemons: iad's lists b and c (a serves the publisher), ams's all three.
  const uint16_t iad_link = free_port(), ams_link = free_port();
  auto daemon_cfg = [&](const std::string& region, uint16_t link, const std::string& peer, uint16_t peer_link) {
    IsthmusdConfig cfg;
    cfg.region = region;
    cfg.link_port = link;
    cfg.http_port = free_port();
    cfg.peers.push_back({peer, peer_link, "", "", ""});
    for (const auto& s : kStreams) cfg.streams.push_back({s, "iad"});
    CertFiles certs = region_certs(tmp.path(), region);
    cfg.tls_ca = certs.ca;
    cfg.tls_cert = certs.cert;
    cfg.tls_key = certs.key;
    return cfg;
  };
  IsthmusdConfig icfg = daemon_cfg("iad", iad_link, "ams", ams_link);
  icfg.nats_urls = {iad.node("iad-b").url(), iad.node("iad-c").url()};
  IsthmusdConfig acfg = daemon_cfg("ams", ams_link, "iad", iad_link);
  for (auto& s : ams.nodes) acfg.nats_urls.push_back(s->url());
  acfg.nats_extra = "replicas = 3";
  iad.daemon = std::make_unique<Isthmusd>(icfg, tmp.subdir("iad-daemon"));
  ams.daemon = std::make_unique<Isthmusd>(acfg, tmp.subdir("ams-daemon"));

  iad.start_nodes();
  ams.start_nodes();
  // A node that returns is ready once current with its meta leader: a
  // returning node's full /healthz can stay 503 for a minute or more with an
  // idle consumer "not current" (nats-server 2.9.10, seen with the test's
  // own ANALYTICS durable and reproduced without Isthmus), which is no
  // matter for what this test checks.
  for (ClusterRegion* r : {&iad, &ams})
    for (auto& n : r->nodes) n->set_health_path("/healthz?js-server-only=true");

  JetStream& ia = iad.js("iad-a");
  check_for(
      30s,
      [&] {
        ia.create_stream({{"name", "EVENTS"},
                          {"subjects", {"events.>"}},
                          {"retention", "limits"},
                          {"storage", "file"},
                          {"num_replicas", 3}});
        return true;
      },
      "EVENTS created (R3) once iad's meta leader is elected");
  ia.create_stream({{"name", "ORDERS"},
                    {"subjects", {"orders.>"}},
                    {"retention", "interest"},
                    {"storage", "file"},
                    {"num_replicas", 3}});
  ia.api("$JS.API.CONSUMER.DURABLE.CREATE.ORDERS.ANALYTICS",
         {{"stream_name", "ORDERS"},
          {"config", {{"durable_name", "ANALYTICS"}, {"ack_policy", "explicit"}, {"deliver_policy", "all"}}}});

  // Both streams led by iad-a, the publisher's node (never lost while it
  // publishes: its acknowledgements must all be at the next sequence).
  auto lead_on = [&](ClusterRegion& r, const std::string& via, const std::string& stream, const std::string& want) {
    check_for(
        60s,
        [&](std::string& st) {
          std::string l = r.stream_leader(via, stream);
          st = stream + " led by '" + l + "'";
          if (l == want) return true;
          if (!l.empty()) r.js(via).api_any("$JS.API.STREAM.LEADER.STEPDOWN." + stream, nullptr, 3s);
          return false;
        },
        stream + " led by " + want);
  };
  for (const auto& s : kStreams) lead_on(iad, "iad-a", s, "iad-a");

  iad.daemon->start();
  ams.daemon->start();
  check_for(
      30s,
      [&](std::string& st) {
        auto r = iad.daemon->http_get("/v1/links", 2s);
        st = r.body;
        return r.status == 200 && json::parse(r.body).at("links").at(0).value("state", "") == "up";
      },
      "iad<->ams link up");

  std::vector<PublishTarget> targets = {{"EVENTS", {"events.created", "events.updated"}, 3},
                                        {"ORDERS", {"orders.placed", "orders.paid"}, 2}};
  // ~500 messages a second in all.
  auto pub = std::make_unique<StreamPublisher>(iad.node("iad-a").url(), targets, 10, 100ms);

  // Waits until iad holds `grow` more messages in each stream than when
  // called, and ams all of those.
  auto await_progress = [&](const std::string& why, const std::string& via_iad, const std::string& via_ams,
                            uint64_t grow = 0) {
    std::map<std::string, uint64_t> mark;
    for (const auto& s : kStreams) mark[s] = iad.info(via_iad, s).at("state").value("last_seq", 0ULL) + grow;
    check_for(
        30s,
        [&](std::string& st) {
          if (pub && pub->failed()) throw Fatal("publisher failed");
          for (const auto& s : kStreams) {
            uint64_t l = iad.info(via_iad, s).at("state").value("last_seq", 0ULL);
            st = s + " at iad at " + std::to_string(l) + " of " + std::to_string(mark[s]);
            if (l < mark[s]) return false;
          }
          return true;
        },
        "iad moving on " + why);
    check_for(
        60s,
        [&](std::string& st) {
          if (pub && pub->failed()) throw Fatal("publisher failed");
          ams.daemon->ensure_running(why);
          iad.daemon->ensure_running(why);
          st.clear();
          bool all = true;
          for (const auto& s : kStreams) {
            uint64_t l = 0;
            try {
              l = ams.info(via_ams, s).at("state").value("last_seq", 0ULL);
            } catch (const std::exception& e) {
              st += s + ": " + e.what() + "; ";
              all = false;
              continue;
            }
            if (l < mark[s]) {
              all = false;
              auto lag = ams.daemon->lag_stream(s);
              st += s + " at " + std::to_string(l) + " of " + std::to_string(mark[s]) + " (" +
                    (lag ? lag->value("state", "?") : "absent") + "); ";
            }
          }
          return all;
        },
        "ams replicating " + why);
  };

  // Some history first: both replicas (and ORDERS' retention anchor at ams)
  // exist and hold messages before a node is lost.
  check_for(
      30s,
      [&] {
        for (const auto& s : kStreams)
          if (iad.info("iad-a", s).at("state").value("last_seq", 0ULL) < 300) return false;
        return true;
      },
      "300 messages in each stream at iad");
  await_progress("before any node is lost", "iad-a", "ams-a");
  {
    json ri = ams.info("ams-a", "EVENTS");
    INFO(ri.dump());
    CHECK(ri.at("config").value("num_replicas", 0) == 3);
    CHECK(ri.at("cluster").value("replicas", json::array()).size() == 2);
  }

  // A node lost with SIGKILL and started again; `via` must be another node.
  auto lose_node = [&](ClusterRegion& r, const std::string& node, const std::string& why,
                       const std::string& via_iad, const std::string& via_ams) {
    INFO(why << ": " << node);
    std::printf("[cluster] %s: SIGKILL %s\n", why.c_str(), node.c_str());
    r.drop_client(node);
    r.node(node).kill();
    await_progress("with " + node + " lost (" + why + ")", via_iad, via_ams, 300);
    r.node(node).start(std::chrono::seconds(40));
    await_progress("after " + node + " returned", via_iad, via_ams, 300);
  };
  auto other_than = [](const std::string& region, const std::string& a, const std::string& b = "") {
    for (const char* x : {"a", "b", "c"}) {
      std::string n = region + "-" + x;
      if (n != a && n != b) return n;
    }
    return std::string();
  };

  // 1. ams: the node leading ams's EVENTS replica.
  std::string ams_leader = ams.stream_leader("ams-a", "EVENTS");
  REQUIRE(!ams_leader.empty());
  lose_node(ams, ams_leader, "the node leading ams's EVENTS replica", "iad-a", other_than("ams", ams_leader));

  // 2. ams: the node ams's daemon is connected to.
  std::string ams_conn;
  check_for(10s, [&] { return !(ams_conn = ams.node_serving("isthmusd-data")).empty(); },
            "ams's daemon's data connection in some node's /connz");
  lose_node(ams, ams_conn, "the node ams's daemon is connected to", "iad-a", other_than("ams", ams_conn));
  std::string ams_conn2;
  check_for(10s, [&] { return !(ams_conn2 = ams.node_serving("isthmusd-data")).empty(); },
            "ams's daemon's data connection on a node again");

  // 2b. ams: the node ams's daemon uses cut off from the other two (its
  // routes down: a network partition inside the cluster). It stays up and
  // keeps the daemon's connections, answering JetStream requests with
  // "temporarily unavailable"; the daemon must leave it for a node of the
  // majority and replicate on while the partition lasts.
  {
    std::string cut;
    check_for(10s, [&] { return !(cut = ams.node_serving("isthmusd-data")).empty(); },
              "ams's daemon's data connection on some node");
    std::printf("[cluster] partition: %s cut off from the rest of ams\n", cut.c_str());
    const std::string log_before = read_file(ams.daemon->log_path());
    ams.drop_client(cut);
    ams.partition(ams.index_of(cut), true);
    const auto t0 = std::chrono::steady_clock::now();
    std::string via = other_than("ams", cut);
    await_progress("with " + cut + " cut off", "iad-a", via, 300);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[figures] cluster: ams replicating again %.1f s after its node was cut off\n", secs);
    std::string now_on;
    for (auto& n : ams.nodes)
      if (n->name() != cut) {
        json c = n->connz();
        for (const auto& conn : c.value("connections", json::array()))
          if (conn.value("name", "") == "isthmusd-data") now_on = n->name();
      }
    INFO("ams's daemon now on '" << now_on << "'");
    CHECK(!now_on.empty());
    // Left once, for the partition (elections before it left nothing).
    auto count = [](const std::string& text, const std::string& what) {
      size_t n = 0;
      for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
      return n;
    };
    const std::string log_after = read_file(ams.daemon->log_path());
    CHECK(count(log_before, "nats: leaving") == 0);
    CHECK(count(log_after, "nats: leaving") == 1);
    ams.partition(ams.index_of(cut), false);
    check_for(
        60s,
        [&](std::string& st) {
          auto h = http_get(ams.node(cut).monitor_port(), "/healthz?js-server-only=true", 2s);
          st = h.body;
          return h.status == 200;
        },
        cut + " back in ams's cluster");
    await_progress("after " + cut + " rejoined", "iad-a", via, 300);
  }

  // 3. iad: the node iad's daemon reads through (b or c; a leads).
  std::string iad_conn;
  check_for(10s, [&] { return !(iad_conn = iad.node_serving("isthmusd-data")).empty(); },
            "iad's daemon's data connection in some node's /connz");
  lose_node(iad, iad_conn, "the node iad's daemon reads through", "iad-a", "ams-a");

  // 4. iad: the streams' leader, publishing paused; then publishing through b.
  pub->stop();
  pub.reset();
  std::printf("[cluster] SIGKILL iad-a (leads EVENTS and ORDERS at iad)\n");
  iad.drop_client("iad-a");
  iad.node("iad-a").kill();
  for (const auto& s : kStreams)
    check_for(
        60s,
        [&](std::string& st) {
          std::string l = iad.stream_leader("iad-b", s);
          st = s + " led by '" + l + "'";
          return !l.empty() && l != "iad-a";
        },
        s + " at iad led by a surviving node");
  StreamPublisher pub2(iad.node("iad-b").url(), targets, 10, 100ms, 3000, 1000000);
  pub2.join();
  await_progress("with iad-a lost (it led both streams)", "iad-b", "ams-a");
  iad.node("iad-a").start(std::chrono::seconds(40));
  await_progress("after iad-a returned", "iad-b", "ams-a");

  // The replica must hold what the leader holds, sequence for sequence,
  // within the 30 s reconcile: nats-server 2.9.10 removes messages from an
  // R3 interest stream that a consumer (ANALYTICS here) never acknowledged
  // once another consumer (the follower's durable) acknowledges them, with
  // no fault at all (docs/architecture.md, Replica retention); such removals
  // at the leader are interior deletes the reconcile replicates.
  for (const auto& s : kStreams) {
    StreamInfo li, fi;
    check_for(
        75s,
        [&](std::string& st) {
          li = iad.js("iad-b").require_stream_info(s, true);
          fi = ams.js("ams-a").require_stream_info(s, true);
          st = "leader first/last/messages " + std::to_string(li.first_seq) + "/" + std::to_string(li.last_seq) +
               "/" + std::to_string(li.messages) + ", replica " + std::to_string(fi.first_seq) + "/" +
               std::to_string(fi.last_seq) + "/" + std::to_string(fi.messages) + ": " +
               compare_stream_states(li, fi);
          return compare_stream_states(li, fi).empty();
        },
        "ams's " + s + " holding what iad's holds");
    auto lm = iad.js("iad-b").read_stream(s);
    auto fm = ams.js("ams-a").read_stream(s);
    MirrorDiff d = compare_streams(lm, fm, "iad");
    INFO(d.summary());
    CHECK(d.ok());
    CHECK(d.compared == lm.size());
    CHECK(lm.size() == li.messages);
    CHECK(fi.raw.at("config").value("num_replicas", 0) == 3);
    std::printf("[figures] cluster: %s: %llu published, %zu held at iad (%llu removed by iad's nats-server), all "
                "identical at ams\n",
                s.c_str(), static_cast<unsigned long long>(li.last_seq), lm.size(),
                static_cast<unsigned long long>(li.last_seq - li.messages));
  }
  // iad's daemon never left a server: its node losses closed its
  // connections, and elections are waited out.
  CHECK(read_file(iad.daemon->log_path()).find("nats: leaving") == std::string::npos);
  for (Isthmusd* d : {iad.daemon.get(), ams.daemon.get()}) {
    auto h = d->http_get("/healthz", 2s);
    INFO(d->region() << " /healthz: " << h.body);
    CHECK(h.status == 200);
  }
}
