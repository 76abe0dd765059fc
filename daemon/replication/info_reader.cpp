#include "replication/info_reader.h"

#include <algorithm>
#include <set>
#include <string_view>
#include <utility>

#include <spdlog/spdlog.h>

#include "loop/timer.h"
#include "nats/jsapi.h"

namespace isthmus::replication {

namespace {

// From this many streams read together, one listing serves them.
constexpr size_t kListMin = 8;
// After this many listings in a row failed (a user that may not list waits
// out a request timeout at each try; one timeout under load is not that),
// streams are read one by one for a while: 60 s, doubling with each further
// failure up to 15 min.
constexpr uint64_t kListFailuresToBackOff = 3;
constexpr int64_t kListOffNs = 60'000'000'000;
constexpr int64_t kListOffMaxNs = 900'000'000'000;
// A batch is not listed when the server held more than this many times its
// streams at the last listing: most of the pages would be other streams'
// information (decided per batch; other batches still list).
constexpr uint64_t kListMaxFactor = 4;
constexpr int64_t kRecountNs = 600'000'000'000;

}  // namespace

StreamInfoReader::StreamInfoReader(Context& ctx) : ctx_(ctx), timer_(std::make_unique<loop::Timer>(ctx.loop)) {}

void StreamInfoReader::stop() {
  stopped_ = true;
  timer_->stop();
}

void StreamInfoReader::read(const std::string& stream, Done done) {
  waiting_[stream].push_back(std::move(done));
  if (scheduled_ || in_flight_ || stopped_) return;
  scheduled_ = true;
  // Zero-delay: after every stream of this loop iteration has asked.
  timer_->start(0, 0, [this] {
    scheduled_ = false;
    run();
  });
}

void StreamInfoReader::run() {
  if (waiting_.empty() || in_flight_ || stopped_) return;
  auto batch = std::make_shared<std::map<std::string, std::vector<Done>>>(std::move(waiting_));
  waiting_.clear();
  const int64_t now = loop::mono_ns();
  std::vector<std::string> names;
  names.reserve(batch->size());
  for (const auto& [n, _] : *batch) {
    auto q = quiet_.find(n);
    if (q != quiet_.end() && q->second.pace.holding(now)) continue;  // answered with its last error
    names.push_back(n);
  }
  // (The server's count is looked at again every 10 min: other streams may
  // have gone.)
  const bool use_list = names.size() >= kListMin && now >= list_off_until_mono_ns_ &&
                        (server_streams_ == 0 || server_streams_ <= kListMaxFactor * names.size() ||
                         now - last_list_mono_ns_ >= kRecountNs);
  if (use_list) last_list_mono_ns_ = now;
  const int64_t tmo = ctx_.timeout_ms();
  in_flight_ = true;
  ctx_.async<Outcome>(
      [names = std::move(names), use_list, tmo](natsConnection* nc) { return read_all(nc, names, use_list, tmo); },
      [this, batch](Outcome o) {
        in_flight_ = false;
        if (o.server_streams > 0) server_streams_ = o.server_streams;
        if (o.list_denied) {
          // Configuration, not load: no use trying again soon.
          list_failures_in_row_ = 0;
          list_off_ns_ = kListOffMaxNs;
          list_off_until_mono_ns_ = loop::mono_ns() + list_off_ns_;
          const auto level = back_offs_++ == 0 ? spdlog::level::info : spdlog::level::debug;
          spdlog::log(level,
                      "stream states: the daemon's NATS user may not publish to $JS.API.STREAM.LIST ({}); each "
                      "stream is read on its own (a request per stream a second) for {} s: grant it to save them",
                      o.list_error, list_off_ns_ / 1'000'000'000);
        } else if (o.list_failed) {
          if (++list_failures_in_row_ >= kListFailuresToBackOff) {
            list_failures_in_row_ = 0;
            list_off_ns_ = list_off_ns_ == 0 ? kListOffNs : std::min(2 * list_off_ns_, kListOffMaxNs);
            list_off_until_mono_ns_ = loop::mono_ns() + list_off_ns_;
            // Once at info (an operator may want to allow it), then at debug.
            const auto level = back_offs_++ == 0 ? spdlog::level::info : spdlog::level::debug;
            spdlog::log(level,
                        "stream states: $JS.API.STREAM.LIST failed {} times in a row (last: {}); each stream is read "
                        "on its own for {} s",
                        kListFailuresToBackOff, o.list_error, list_off_ns_ / 1'000'000'000);
          }
        } else if (o.list_requests > 0) {
          list_failures_in_row_ = 0;
          list_off_ns_ = 0;
        }
        const int64_t done_at = loop::mono_ns();
        for (const auto& [name, r] : o.infos) {
          if (o.unanswered_alone.count(name) > 0) {
            // Twice in a row: once may be a stalled server that answered
            // the PING after it came back (the stream is read next round).
            Quiet& q = quiet_[name];
            const int64_t pause = q.pace.note(true, done_at);
            if (pause == 0) continue;
            q.last = Status(r.status().code(),
                            r.status().message() + " (asked again in " + std::to_string(pause / 1'000'000'000) + " s)");
          } else {
            quiet_.erase(name);  // answered, or failed otherwise: not in a row
          }
        }
        for (auto& [name, dones] : *batch) {
          auto it = o.infos.find(name);
          auto q = quiet_.find(name);
          Result<Json> r = it != o.infos.end()                          ? it->second
                           : q != quiet_.end() && q->second.pace.pausing() ? Result<Json>(q->second.last)
                                                                        : Result<Json>(Status(Code::kUnavailable, "not read"));
          for (auto& d : dones) d(r);
        }
        run();  // what was asked for meanwhile
      });
}

StreamInfoReader::Outcome StreamInfoReader::read_all(natsConnection* nc, const std::vector<std::string>& names,
                                                     bool use_list, int64_t timeout_ms) {
  Outcome o;
  if (use_list && nc != nullptr) {
    std::set<std::string> want(names.begin(), names.end());
    uint64_t offset = 0;
    while (!want.empty()) {
      auto page = nats::stream_list(nc, offset, timeout_ms);
      ++o.list_requests;
      if (!page) {
        // Not for a connection lost meanwhile (the next batch lists again).
        o.list_failed = page.status().code() != Code::kUnavailable;
        o.list_error = page.status().message();
        // A request the server refuses for permissions is not answered
        // (cnats waits out the timeout); the server's -ERR is the
        // connection's last error.
        const char* last = nullptr;
        if (page.status().code() == Code::kTimeout &&
            natsConnection_GetLastError(nc, &last) == NATS_NOT_PERMITTED && last != nullptr &&
            std::string_view(last).find("$JS.API.STREAM.LIST") != std::string_view::npos) {
          o.list_denied = true;
          o.list_error = last;
        }
        o.list_timeout = page.status().code() == Code::kTimeout && !o.list_denied;
        break;
      }
      const Json& streams = (*page)["streams"];
      const uint64_t total = page->value("total", uint64_t{0});
      o.server_streams = total;
      if (!streams.is_array() || streams.empty()) break;
      // A clustered server lists a stream whose replicas did not answer in
      // time with its configuration only, and names it in "missing": such
      // a stream is read on its own.
      std::set<std::string> missing;
      if (page->contains("missing") && (*page)["missing"].is_array()) {
        for (const Json& m : (*page)["missing"])
          if (m.is_string()) missing.insert(m.get<std::string>());
      }
      for (const Json& si : streams) {
        if (!si.is_object() || !si.contains("config") || !si["config"].is_object() || !si.contains("state")) continue;
        std::string n = si["config"].value("name", std::string());
        if (missing.count(n) == 0 && want.erase(n) > 0) o.infos.emplace(std::move(n), si);
      }
      offset += streams.size();
      if (offset >= total) break;
      if (total > kListMaxFactor * names.size()) break;  // the rest one by one
    }
  }
  // A server that answers nothing (stopped, starved) would hold the NATS
  // worker a whole timeout per stream, one after the other (200 streams at
  // 2 s: minutes, with every other request queued behind): after one
  // request of this round timed out unanswered, and the server does not
  // answer a PING either, the rest are not asked. (A server that answers
  // the PING is not silent: one stream that does not answer, e.g. a
  // clustered stream without a leader, or a listing slower than the
  // timeout, must not fail the others. A refusal for permissions is
  // unanswered too, but named in the connection's last error.)
  auto refused = [nc](const std::string& subject) {
    const char* last = nullptr;
    return natsConnection_GetLastError(nc, &last) == NATS_NOT_PERMITTED && last != nullptr &&
           std::string_view(last).find(subject) != std::string_view::npos;
  };
  auto server_silent = [nc, timeout_ms] { return !nats::answers_ping(nc, timeout_ms); };
  std::string silent;  // the request that went unanswered
  if (o.list_timeout && nc != nullptr && server_silent()) silent = "$JS.API.STREAM.LIST";
  for (const auto& n : names) {
    if (o.infos.count(n) > 0) continue;
    if (!silent.empty()) {
      o.infos.emplace(n, Result<Json>(Status(Code::kTimeout, "$JS.API.STREAM.INFO." + n + ": not asked: " + silent +
                                                               " went unanswered (timeout) this round")));
      continue;
    }
    auto r = nats::stream_info(nc, n, timeout_ms);
    if (!r && r.status().code() == Code::kTimeout && nc != nullptr) {
      if (refused("$JS.API.STREAM.INFO." + n) || !server_silent()) {
        o.unanswered_alone.insert(n);
      } else {
        silent = "$JS.API.STREAM.INFO." + n;
      }
    }
    o.infos.emplace(n, std::move(r));
  }
  return o;
}

}  // namespace isthmus::replication
