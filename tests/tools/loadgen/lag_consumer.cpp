#include "lag_consumer.h"

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "payload.h"

namespace loadgen {
namespace {

// One message of a written series (measure_lag's series_path).
struct Sample {
  int64_t arrival_ns, lag_ns;
  int64_t origin_ns;   // Isthmus-Origin-Time header (the leader's store time); 0: none
  int64_t replica_ns;  // the consumed stream's store time (JetStream metadata); 0: unknown
};

struct Lags {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int64_t> lag_ns;
  bool keep_series = false;  // set before subscribing, never changed
  bool series_open = false;  // under mu: samples still wanted
  std::vector<Sample> series;
  long unstamped = 0;
  long want = 0;
  int64_t first_ns = 0, last_ns = 0;
};

void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  const int64_t now = realtime_ns();
  auto* l = static_cast<Lags*>(closure);
  auto stamp = read_stamp(std::string_view(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))));
  Sample smp{now, 0, 0, 0};
  if (l->keep_series && stamp) {
    const char* ot = nullptr;
    if (natsMsgHeader_Get(msg, "Isthmus-Origin-Time", &ot) == NATS_OK && ot != nullptr) smp.origin_ns = std::atoll(ot);
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      smp.replica_ns = meta->Timestamp;
      jsMsgMetaData_Destroy(meta);
    }
  }
  natsMsg_Destroy(msg);
  std::lock_guard<std::mutex> lk(l->mu);
  if (!stamp) {
    l->unstamped++;
    return;
  }
  if (l->first_ns == 0) l->first_ns = now;
  l->last_ns = now;
  l->lag_ns.push_back(now - *stamp);
  if (l->series_open) {
    smp.lag_ns = now - *stamp;
    l->series.push_back(smp);
  }
  if (static_cast<long>(l->lag_ns.size()) >= l->want) l->cv.notify_all();
}

std::string api(natsConnection* nc, const std::string& subj, const std::string& body) {
  natsMsg* reply = nullptr;
  natsStatus s = natsConnection_Request(&reply, nc, subj.c_str(), body.data(), static_cast<int>(body.size()), 5000);
  if (s != NATS_OK) return std::string("{\"error\":\"") + natsStatus_GetText(s) + "\"}";
  std::string d(natsMsg_GetData(reply), static_cast<size_t>(natsMsg_GetDataLength(reply)));
  natsMsg_Destroy(reply);
  return d;
}

double pct_ms(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return static_cast<double>(sorted[std::min(i, sorted.size() - 1)]) / 1e6;
}

bool write_series(const std::string& path, const std::vector<Sample>& series) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  for (const Sample& x : series) {
    std::fprintf(f, "%lld %lld %lld %lld\n", static_cast<long long>(x.arrival_ns), static_cast<long long>(x.lag_ns),
                 static_cast<long long>(x.origin_ns), static_cast<long long>(x.replica_ns));
  }
  return std::fclose(f) == 0;
}

}  // namespace

int measure_lag(natsConnection* nc, const std::string& stream, long count, double timeout_s,
                const std::string& series_path) {
  Lags lags;
  lags.want = count;
  lags.lag_ns.reserve(static_cast<size_t>(std::max(0L, count)));
  lags.keep_series = !series_path.empty();
  lags.series_open = lags.keep_series;
  if (lags.keep_series) lags.series.reserve(static_cast<size_t>(std::max(0L, count)));
  std::vector<Sample> series;
  natsInbox* inbox = nullptr;
  natsInbox_Create(&inbox);
  std::string deliver = inbox;
  natsInbox_Destroy(inbox);
  natsSubscription* sub = nullptr;
  if (natsConnection_Subscribe(&sub, nc, deliver.c_str(), on_msg, &lags) != NATS_OK) return 1;
  natsSubscription_SetPendingLimits(sub, -1, -1);
  natsConnection_Flush(nc);
  nlohmann::json req = {{"stream_name", stream},
                        {"config",
                         {{"deliver_subject", deliver},
                          {"deliver_policy", "new"},
                          {"ack_policy", "none"},
                          {"replay_policy", "instant"},
                          {"inactive_threshold", int64_t{30} * 1000000000}}}};
  auto created = nlohmann::json::parse(api(nc, "$JS.API.CONSUMER.CREATE." + stream, req.dump()), nullptr, false);
  if (created.is_discarded() || created.contains("error")) {
    std::fprintf(stderr, "consumer create on %s failed: %s\n", stream.c_str(),
                 created.is_discarded() ? "bad reply" : created["error"].dump().c_str());
    natsSubscription_Destroy(sub);
    return 1;
  }
  const std::string name = created["name"].get<std::string>();
  std::printf("ready\n");
  std::fflush(stdout);

  std::vector<int64_t> v;
  long unstamped = 0;
  int64_t first = 0, last = 0;
  {
    std::unique_lock<std::mutex> lk(lags.mu);
    lags.cv.wait_for(lk, std::chrono::duration<double>(timeout_s),
                     [&] { return static_cast<long>(lags.lag_ns.size()) >= count; });
  }
  natsSubscription_Unsubscribe(sub);
  {
    std::lock_guard<std::mutex> lk(lags.mu);
    v = lags.lag_ns;
    // A callback may still be running after the unsubscribe: take the
    // samples under the lock and let it add no more.
    series = std::move(lags.series);
    lags.series_open = false;
    unstamped = lags.unstamped;
    first = lags.first_ns;
    last = lags.last_ns;
  }
  natsSubscription_Destroy(sub);
  if (lags.keep_series && !write_series(series_path, series)) {
    std::fprintf(stderr, "cannot write %s\n", series_path.c_str());
  }
  api(nc, "$JS.API.CONSUMER.DELETE." + stream + "." + name, "");
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (int64_t x : v) sum += static_cast<double>(x);
  nlohmann::json out = {{"received", v.size()},
                        {"unstamped", unstamped},
                        {"p50_ms", pct_ms(v, 0.50)},
                        {"p90_ms", pct_ms(v, 0.90)},
                        {"p99_ms", pct_ms(v, 0.99)},
                        {"max_ms", v.empty() ? 0.0 : static_cast<double>(v.back()) / 1e6},
                        {"mean_ms", v.empty() ? 0.0 : sum / static_cast<double>(v.size()) / 1e6},
                        {"first_ns", first},
                        {"last_ns", last}};
  std::printf("%s\n", out.dump().c_str());
  return static_cast<long>(v.size()) >= count ? 0 : 1;
}

}  // namespace loadgen
