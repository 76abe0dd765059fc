#include "replication/server_watch.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "loop/timer.h"
#include "nats/jsapi.h"

namespace isthmus::replication {

bool LeaveRule::observe(ServerProbe p, int64_t now_ms, const std::string& why) {
  switch (p) {
    case ServerProbe::kServes:
      bad_since_ms_ = -1;
      wait_ms_ = kFirstLeaveMs;
      return false;
    case ServerProbe::kUnknown:
    case ServerProbe::kRefused:
      return false;
    case ServerProbe::kNoJetStream:
      break;
  }
  // Bad answers must follow one another: one long ago (a blip, then only
  // unanswered probes) does not count towards this run.
  if (bad_since_ms_ < 0 || now_ms - last_bad_ms_ > kMaxGapMs) bad_since_ms_ = now_ms;
  last_bad_ms_ = now_ms;
  if (now_ms - bad_since_ms_ < wait_ms_) return false;
  reason_ = why + " for " + std::to_string((now_ms - bad_since_ms_) / 1000) + " s";
  bad_since_ms_ = -1;
  wait_ms_ = std::min(2 * wait_ms_, kMaxLeaveMs);
  return true;
}

ServerWatch::ServerWatch(Context& ctx) : ctx_(ctx) {}

ServerWatch::~ServerWatch() { *alive_ = false; }

void ServerWatch::stop() { stopped_ = true; }

void ServerWatch::on_nats_up(uint64_t generation) {
  conn_gen_ = generation;
  refused_ = false;
  unanswered_ = 0;
  interval_ms_ = kProbeIntervalMs;
  rule_.reset();
}

void ServerWatch::tick() {
  if (stopped_ || in_flight_ || refused_ || ctx_.cfg->nats.urls.size() < 2 || !ctx_.nats->connected()) return;
  const int64_t now = loop::mono_ns() / 1'000'000;
  if (now - last_probe_ms_ < interval_ms_) return;
  last_probe_ms_ = now;
  probe();
}

namespace {
struct Probed {
  ServerProbe result = ServerProbe::kUnknown;
  std::string why;
};
}  // namespace

void ServerWatch::probe() {
  in_flight_ = true;
  const int64_t timeout = std::min<int64_t>(ctx_.timeout_ms(), kProbeTimeoutMs);
  const uint64_t gen = conn_gen_;
  std::weak_ptr<bool> alive = alive_;
  ctx_.async<Probed>(
      [timeout](natsConnection* nc) -> Probed {
        if (nc == nullptr) return {};
        static const std::string kSubject = "$JS.API.INFO";
        auto r = nats::api_request(nc, kSubject, "", timeout);
        if (r) return {ServerProbe::kServes, ""};
        const std::string& m = r.status().message();
        if (m.find("err_code 10008") != std::string::npos)
          return {ServerProbe::kNoJetStream,
                  "it has answered JetStream requests with '" + m + "' (cut off from its cluster's meta leader)"};
        if (m.find("no responders") != std::string::npos)
          return {ServerProbe::kNoJetStream, "no JetStream has answered there ($JS.API.INFO: no responders)"};
        const char* last = nullptr;
        if (r.status().code() == Code::kTimeout &&
            natsConnection_GetLastError(nc, &last) == NATS_NOT_PERMITTED && last != nullptr &&
            std::string(last).find(kSubject) != std::string::npos)
          return {ServerProbe::kRefused, last};
        return {};
      },
      [this, alive, gen](Probed p) {
        auto live = alive.lock();
        if (!live || !*live) return;
        in_flight_ = false;
        if (stopped_ || gen != conn_gen_) return;  // a probe of an earlier connection
        switch (p.result) {
          case ServerProbe::kRefused:
            refused_ = true;
            spdlog::info("nats: not watching whether the server serves JetStream (the daemon's user may not ask "
                         "$JS.API.INFO: {}); a server cut off from its cluster is not left", p.why);
            return;
          case ServerProbe::kUnknown:
            // A server cut off from its cluster times out for a while
            // before it says so: keep asking at the usual pace at first.
            if (++unanswered_ > kUnansweredAtPace) interval_ms_ = std::min(2 * interval_ms_, kMaxProbeIntervalMs);
            break;
          case ServerProbe::kNoJetStream:
            spdlog::debug("nats: server probe: {}", p.why);
            unanswered_ = 0;
            interval_ms_ = kProbeIntervalMs;
            break;
          case ServerProbe::kServes:
            unanswered_ = 0;
            interval_ms_ = kProbeIntervalMs;
            break;
        }
        const int64_t now = loop::mono_ns() / 1'000'000;
        if (rule_.observe(p.result, now, p.why)) ctx_.nats->leave_server(gen, rule_.reason());
      });
}

}  // namespace isthmus::replication
