// isthmus-loadgen: drives a local JetStream for demos and benchmarks.
//
//   isthmus-loadgen create-stream --url URL --json '{"name":...}'
//   isthmus-loadgen publish --url URL --subjects a,b,c --count N
//                   [--rate MSGS_PER_S] [--payload country|bytes|json_events]
//                   [--size BYTES] [--msg-id-every K] [--inflight N]
//                   [--index-header 0|1]
//   isthmus-loadgen lag --url URL --stream NAME --count N [--timeout SECONDS]
//                   [--series FILE]
//   isthmus-loadgen wait-count --url URL --stream NAME --count N
//                   [--timeout SECONDS] [--interval-ms MS]
//   isthmus-loadgen info --url URL --stream NAME
//   isthmus-loadgen ping --url URL          (JetStream answers?)
//   isthmus-loadgen api --url URL --subject '$JS.API....' [--json BODY]
//                   (any JetStream API request; prints the reply, fails on
//                   an "error" in it)
//
// One concept per file: payloads (payload.h: the country demo event, and the
// stamped `bytes` and `json_events` payloads of the replication benchmark),
// paced asynchronous publishing (publisher.h), the lag-measuring consumer
// (lag_consumer.h) and the catch-up watcher (catchup_watch.h). This file
// parses arguments and connects.
//
// publish checks every JetStream acknowledgement; it prints messages, seconds
// and msgs/s, and exits non-zero if any publish failed. With --rate the
// connection sends each publish at once (no ~1 ms batching), so stamps and
// send times agree.
#include <nats/nats.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "catchup_watch.h"
#include "lag_consumer.h"
#include "payload.h"
#include "publisher.h"

namespace {

struct Args {
  std::string cmd, url = "nats://127.0.0.1:4222", json, stream, subject, payload = "country", series;
  loadgen::PublishOptions pub{.subjects = {"covenant.countries.created", "covenant.countries.updated",
                                           "covenant.countries.deleted"}};
  long size = 0, interval_ms = 10;
  double timeout_s = 60;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t p = s.find(',', start);
    if (p == std::string::npos) p = s.size();
    if (p > start) out.push_back(s.substr(start, p - start));
    start = p + 1;
  }
  return out;
}

int request(natsConnection* nc, const std::string& subj, const std::string& body) {
  natsMsg* reply = nullptr;
  natsStatus s = natsConnection_Request(&reply, nc, subj.c_str(), body.data(), static_cast<int>(body.size()), 5000);
  if (s != NATS_OK) {
    std::fprintf(stderr, "%s: %s\n", subj.c_str(), natsStatus_GetText(s));
    return 1;
  }
  std::string d(natsMsg_GetData(reply), static_cast<size_t>(natsMsg_GetDataLength(reply)));
  natsMsg_Destroy(reply);
  std::printf("%s\n", d.c_str());
  return d.find("\"error\"") == std::string::npos ? 0 : 1;
}

std::string stream_name_of(const std::string& json) {
  auto p = json.find("\"name\"");
  if (p == std::string::npos) return "";
  auto q1 = json.find('"', json.find(':', p) + 1);
  auto q2 = json.find('"', q1 + 1);
  return json.substr(q1 + 1, q2 - q1 - 1);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  const char* kUsage =
      "usage: isthmus-loadgen create-stream|publish|lag|wait-count|info|ping|api [--url URL] [options]\n"
      "options (each takes a value): --url --json --stream --subject --subjects --count --rate --size --payload\n"
      "  --msg-id-every --inflight --index-header --timeout --series --interval-ms\n";
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  a.cmd = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--url") a.url = v;
    else if (k == "--json") a.json = v;
    else if (k == "--stream") a.stream = v;
    else if (k == "--subject") a.subject = v;
    else if (k == "--subjects") a.pub.subjects = split(v);
    else if (k == "--count") a.pub.count = std::atol(v.c_str());
    else if (k == "--rate") a.pub.rate = std::atol(v.c_str());
    else if (k == "--size") a.size = std::atol(v.c_str());
    else if (k == "--payload") a.payload = v;
    else if (k == "--msg-id-every") a.pub.msg_id_every = std::atol(v.c_str());
    else if (k == "--inflight") a.pub.inflight = std::max(1L, std::atol(v.c_str()));
    else if (k == "--index-header") a.pub.index_header = v != "0";
    else if (k == "--timeout") a.timeout_s = std::atof(v.c_str());
    else if (k == "--series") a.series = v;
    else if (k == "--interval-ms") a.interval_ms = std::max(1L, std::atol(v.c_str()));
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  auto kind = loadgen::payload_kind_from_name(a.payload);
  if (!kind) {
    std::fprintf(stderr, "unknown payload %s (country, bytes, json_events)\n", a.payload.c_str());
    return 2;
  }
  natsOptions* opts = nullptr;
  natsOptions_Create(&opts);
  natsOptions_SetURL(opts, a.url.c_str());
  if (a.cmd == "publish" && a.pub.rate > 0) natsOptions_SetSendAsap(opts, true);
  natsConnection* nc = nullptr;
  natsStatus s = natsConnection_Connect(&nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    std::fprintf(stderr, "connect %s: %s\n", a.url.c_str(), natsStatus_GetText(s));
    return 1;
  }
  int rc = 2;
  if (a.cmd == "create-stream") {
    rc = request(nc, "$JS.API.STREAM.CREATE." + stream_name_of(a.json), a.json);
  } else if (a.cmd == "publish") {
    loadgen::Payloads payloads(*kind, a.size);
    rc = loadgen::publish(nc, a.pub, payloads);
  } else if (a.cmd == "lag") {
    rc = loadgen::measure_lag(nc, a.stream, a.pub.count, a.timeout_s, a.series);
  } else if (a.cmd == "wait-count") {
    rc = loadgen::watch_catchup(nc, a.stream, static_cast<uint64_t>(a.pub.count), a.timeout_s, a.interval_ms);
  } else if (a.cmd == "ping") {
    rc = request(nc, "$JS.API.INFO", "");
  } else if (a.cmd == "api" && a.subject.rfind("$JS.API.", 0) == 0) {
    rc = request(nc, a.subject, a.json);
  } else if (a.cmd == "info") {
    rc = request(nc, "$JS.API.STREAM.INFO." + a.stream, "");
  } else {
    std::fprintf(stderr, "unknown command %s\n", a.cmd.c_str());
  }
  natsConnection_Destroy(nc);
  nats_Close();
  return rc;
}
