// isthmus-loadgen: drives a local JetStream for demos and benchmarks.
//
//   isthmus-loadgen create-stream --url URL --json '{"name":...}'
//   isthmus-loadgen publish --url URL --subjects a,b,c --count N
//                   [--rate MSGS_PER_S] [--size BYTES] [--msg-id-every K]
//                   [--inflight N]
//   isthmus-loadgen info --url URL --stream NAME
//   isthmus-loadgen ping --url URL          (JetStream answers?)
//   isthmus-loadgen api --url URL --subject '$JS.API....' [--json BODY]
//                   (any JetStream API request; prints the reply, fails on
//                   an "error" in it)
//
// publish sends asynchronously with up to --inflight unacknowledged messages
// and checks every JetStream acknowledgement; it prints messages, seconds and
// msgs/s, and exits non-zero if any publish failed.
#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Args {
  std::string cmd, url = "nats://127.0.0.1:4222", json, stream, subject;
  std::vector<std::string> subjects{"covenant.countries.created", "covenant.countries.updated",
                                    "covenant.countries.deleted"};
  long count = 1000, rate = 0, size = 0, msg_id_every = 0, inflight = 1000;
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

const char* kCountries[][2] = {{"USA", "United States"}, {"NLD", "Netherlands"}, {"AUS", "Australia"},
                               {"DEU", "Germany"},       {"JPN", "Japan"},       {"BRA", "Brazil"}};

std::string payload(long i, long size) {
  const auto& c = kCountries[i % 6];
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "{\"id\":\"evt-%08ld\",\"type\":\"country.updated\",\"code\":\"%s\",\"name\":\"%s\","
                "\"ts\":%lld,\"user\":\"user-%ld\"}",
                i, c[0], c[1],
                static_cast<long long>(std::chrono::system_clock::now().time_since_epoch().count()), i % 97);
  std::string s(buf);
  if (size > 0) {
    while (static_cast<long>(s.size()) < size) s += ' ';
    s.resize(static_cast<size_t>(size));
  }
  return s;
}

struct Acks {
  std::mutex mu;
  std::condition_variable cv;
  long outstanding = 0, ok = 0, failed = 0;
};

void on_ack(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* a = static_cast<Acks*>(closure);
  std::string d(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
  bool good = d.find("\"seq\"") != std::string::npos && d.find("\"error\"") == std::string::npos;
  if (!good && a->failed < 5) std::fprintf(stderr, "publish failed: %s\n", d.c_str());
  natsMsg_Destroy(msg);
  std::lock_guard<std::mutex> lk(a->mu);
  a->outstanding--;
  (good ? a->ok : a->failed)++;
  a->cv.notify_all();
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

int publish(natsConnection* nc, const Args& a) {
  Acks acks;
  natsInbox* inbox = nullptr;
  natsInbox_Create(&inbox);
  std::string prefix = std::string(inbox) + ".";
  natsInbox_Destroy(inbox);
  natsSubscription* sub = nullptr;
  if (natsConnection_Subscribe(&sub, nc, (prefix + "*").c_str(), on_ack, &acks) != NATS_OK) return 1;
  natsSubscription_SetPendingLimits(sub, -1, -1);
  auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < a.count; ++i) {
    if (a.rate > 0) {
      auto due = start + std::chrono::microseconds(i * 1000000 / a.rate);
      std::this_thread::sleep_until(due);
    }
    {
      std::unique_lock<std::mutex> lk(acks.mu);
      acks.cv.wait(lk, [&] { return acks.outstanding < a.inflight; });
      acks.outstanding++;
    }
    natsMsg* m = nullptr;
    std::string p = payload(i, a.size);
    std::string reply = prefix + std::to_string(i);
    natsMsg_Create(&m, a.subjects[static_cast<size_t>(i) % a.subjects.size()].c_str(), reply.c_str(), p.data(),
                   static_cast<int>(p.size()));
    natsMsgHeader_Set(m, "Event-Index", std::to_string(i).c_str());
    if (a.msg_id_every > 0 && i % a.msg_id_every == 0) {
      natsMsgHeader_Set(m, "Nats-Msg-Id", ("evt-" + std::to_string(i)).c_str());
    }
    natsConnection_PublishMsg(nc, m);
    natsMsg_Destroy(m);
  }
  {
    std::unique_lock<std::mutex> lk(acks.mu);
    acks.cv.wait_for(lk, std::chrono::seconds(30), [&] { return acks.outstanding == 0; });
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  natsSubscription_Destroy(sub);
  std::printf("published %ld messages in %.2f s (%.0f msg/s), %ld failed\n", acks.ok, secs,
              static_cast<double>(acks.ok) / secs, acks.failed + acks.outstanding);
  return acks.failed == 0 && acks.outstanding == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (argc < 2) {
    std::fprintf(stderr, "usage: isthmus-loadgen create-stream|publish|info|ping|api [options]\n");
    return 2;
  }
  a.cmd = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--url") a.url = v;
    else if (k == "--json") a.json = v;
    else if (k == "--stream") a.stream = v;
    else if (k == "--subject") a.subject = v;
    else if (k == "--subjects") a.subjects = split(v);
    else if (k == "--count") a.count = std::atol(v.c_str());
    else if (k == "--rate") a.rate = std::atol(v.c_str());
    else if (k == "--size") a.size = std::atol(v.c_str());
    else if (k == "--msg-id-every") a.msg_id_every = std::atol(v.c_str());
    else if (k == "--inflight") a.inflight = std::max(1L, std::atol(v.c_str()));
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  natsConnection* nc = nullptr;
  natsStatus s = natsConnection_ConnectTo(&nc, a.url.c_str());
  if (s != NATS_OK) {
    std::fprintf(stderr, "connect %s: %s\n", a.url.c_str(), natsStatus_GetText(s));
    return 1;
  }
  int rc = 2;
  if (a.cmd == "create-stream") {
    std::string name;
    auto p = a.json.find("\"name\"");
    if (p != std::string::npos) {
      auto q1 = a.json.find('"', a.json.find(':', p) + 1);
      auto q2 = a.json.find('"', q1 + 1);
      name = a.json.substr(q1 + 1, q2 - q1 - 1);
    }
    rc = request(nc, "$JS.API.STREAM.CREATE." + name, a.json);
  } else if (a.cmd == "publish") {
    rc = publish(nc, a);
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
