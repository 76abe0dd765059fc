#include "replication/info_reader.h"

#include <algorithm>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "loop/timer.h"
#include "nats/jsapi.h"

namespace isthmus::replication {

namespace {

// From this many streams read together, one listing serves them.
constexpr size_t kListMin = 8;
// A listing failed: streams are read one by one this long, doubling with
// each further failure up to the maximum (a user that may not list waits
// out a request timeout at each try).
constexpr int64_t kListOffNs = 60'000'000'000;
constexpr int64_t kListOffMaxNs = 900'000'000'000;
// Listing stops (the rest read one by one) when the server holds more than
// this many times the streams asked for: most of the pages would be other
// streams' information.
constexpr uint64_t kListMaxFactor = 4;

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
  std::vector<std::string> names;
  names.reserve(batch->size());
  for (const auto& [n, _] : *batch) names.push_back(n);
  const bool use_list = names.size() >= kListMin && loop::mono_ns() >= list_off_until_mono_ns_;
  const int64_t tmo = ctx_.timeout_ms();
  in_flight_ = true;
  ctx_.async<Outcome>(
      [names = std::move(names), use_list, tmo](natsConnection* nc) { return read_all(nc, names, use_list, tmo); },
      [this, batch](Outcome o) {
        in_flight_ = false;
        list_requests_ += o.list_requests;
        single_requests_ += o.single_requests;
        if (o.list_failed) {
          list_off_ns_ = list_off_ns_ == 0 ? kListOffNs : std::min(2 * list_off_ns_, kListOffMaxNs);
          list_off_until_mono_ns_ = loop::mono_ns() + list_off_ns_;
          // Once at info (an operator may want to allow it), then at debug.
          const auto level = list_failures_++ == 0 ? spdlog::level::info : spdlog::level::debug;
          spdlog::log(level, "stream states: $JS.API.STREAM.LIST failed ({}); each stream is read on its own for {} s",
                      o.list_error, list_off_ns_ / 1'000'000'000);
        } else if (o.list_requests > 0) {
          list_off_ns_ = 0;
        }
        for (auto& [name, dones] : *batch) {
          auto it = o.infos.find(name);
          for (auto& d : dones) {
            d(it != o.infos.end() ? it->second : Result<Json>(Status(Code::kUnavailable, "not read")));
          }
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
        break;
      }
      const Json& streams = (*page)["streams"];
      if (!streams.is_array() || streams.empty()) break;
      for (const Json& si : streams) {
        if (!si.is_object() || !si.contains("config") || !si["config"].is_object() || !si.contains("state")) continue;
        std::string n = si["config"].value("name", std::string());
        if (want.erase(n) > 0) o.infos.emplace(std::move(n), si);
      }
      offset += streams.size();
      const uint64_t total = page->value("total", uint64_t{0});
      if (offset >= total) break;
      if (total > kListMaxFactor * names.size()) {
        o.list_failed = true;
        o.list_error = "the server holds " + std::to_string(total) + " streams, " + std::to_string(names.size()) +
                       " of them read here";
        break;
      }
    }
  }
  for (const auto& n : names) {
    if (o.infos.count(n) > 0) continue;
    o.infos.emplace(n, nats::stream_info(nc, n, timeout_ms));
    ++o.single_requests;
  }
  return o;
}

}  // namespace isthmus::replication
