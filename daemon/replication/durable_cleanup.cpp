#include "replication/durable_cleanup.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <utility>

#include "loop/timer.h"
#include "nats/jsapi.h"
#include "replication/replica_config.h"

namespace isthmus::replication {

using Json = nlohmann::json;

namespace {

constexpr int64_t kRetryNs = 30'000'000'000;
constexpr int64_t kRewarnNs = 600'000'000'000;
constexpr int64_t kScanRetryNs = 60'000'000'000;
constexpr int64_t kRecheckNs = 5'000'000'000;      // leftover durables: gone yet?
constexpr int64_t kRecheckMaxNs = 60'000'000'000;  // ... while the server does not answer
constexpr int kMaxListPages = 64;      // 16,384 streams
constexpr size_t kStreamsPerJob = 16;  // consumer listings per scan job

}  // namespace

DurableCleanup::DurableCleanup(Context& ctx, std::function<bool(const std::string&)> configured,
                               std::function<bool(const std::string&)> led)
    : ctx_(ctx), configured_(std::move(configured)), led_(std::move(led)) {}

void DurableCleanup::removed(const std::string& stream) {
  if (std::find(to_delete_.begin(), to_delete_.end(), stream) == to_delete_.end()) to_delete_.push_back(stream);
  delete_now();
}

void DurableCleanup::led_again(const std::string& stream) {
  to_delete_.erase(std::remove(to_delete_.begin(), to_delete_.end(), stream), to_delete_.end());
  std::lock_guard<std::mutex> lock(cancelled_->m);
  cancelled_->names.insert(stream);
}

void DurableCleanup::on_nats_up() {
  if (deleting_) redo_ = true;  // (the job under way may fail with the old connection)
  delete_now();
  scan();
}

void DurableCleanup::tick() {
  const int64_t now = loop::mono_ns();
  if (!to_delete_.empty() && now - tried_mono_ns_ > kRetryNs) delete_now();
  if (!scanned_ && now - scan_tried_mono_ns_ > kScanRetryNs) scan();
  // A stream led here again (added back by reload) uses its durables
  // again. (Followed instead, it does not: they still keep its messages.)
  for (auto it = leftover_.begin(); it != leftover_.end();) {
    it = led_(it->first) ? leftover_.erase(it) : std::next(it);
  }
  if (!leftover_.empty() && now - rechecked_mono_ns_ > recheck_ns_) recheck();
}

void DurableCleanup::delete_now() {
  if (!ctx_.conn || deleting_) return;
  std::vector<std::string> streams;
  for (const auto& s : to_delete_) {
    if (!led_(s)) streams.push_back(s);
  }
  to_delete_.clear();
  if (streams.empty()) return;
  {
    std::lock_guard<std::mutex> lock(cancelled_->m);
    for (const auto& s : streams) cancelled_->names.erase(s);  // (removed again since)
  }
  deleting_ = true;
  in_flight_ = streams;
  tried_mono_ns_ = loop::mono_ns();
  struct Failure {
    std::string stream;
    std::string error;
  };
  const int64_t tmo = ctx_.timeout_ms();
  auto cancelled = cancelled_;
  ctx_.async<std::vector<Failure>>(
      [streams, tmo, cancelled](natsConnection* nc) {
        std::vector<Failure> failed;
        std::vector<Failure> timed_out;  // (last in line next time: the others are not held up by it)
        bool stalled = false;            // a request timed out: the rest waits for the retry
        for (const auto& stream : streams) {
          {
            std::lock_guard<std::mutex> lock(cancelled->m);
            if (cancelled->names.count(stream)) continue;  // led again meanwhile
          }
          if (nc == nullptr || stalled) {
            failed.push_back({stream, nc == nullptr ? "NATS connection down" : "the server did not answer"});
            continue;
          }
          auto names = nats::consumer_names(nc, stream, tmo);
          if (!names) {
            // (The stream itself deleted: nothing holds anything.)
            if (names.status().code() == Code::kNotFound) continue;
            stalled = names.status().code() == Code::kTimeout;
            (stalled ? timed_out : failed).push_back({stream, "cannot list its consumers: " + names.status().message()});
            continue;
          }
          for (const auto& n : *names) {
            const std::string region = durable_region(n);
            if (region.empty()) continue;
            Status st = nats::consumer_delete(nc, stream, n, tmo);
            if (st) {
              spdlog::warn("stream {}: deleted durable {} (this region no longer leads the stream: removed from "
                           "its configuration, or led elsewhere now; it kept every message region {} had not "
                           "stored)",
                           stream, n, region);
            } else if (st.code() != Code::kNotFound) {
              stalled = st.code() == Code::kTimeout;
              (stalled ? timed_out : failed).push_back({stream, "cannot delete durable " + n + ": " + st.message()});
              break;
            }
          }
        }
        failed.insert(failed.end(), timed_out.begin(), timed_out.end());
        return failed;
      },
      [this](std::vector<Failure> failed) {
        deleting_ = false;
        const int64_t now = loop::mono_ns();
        for (const auto& s : in_flight_) {
          if (std::none_of(failed.begin(), failed.end(), [&s](const Failure& f) { return f.stream == s; })) {
            warned_mono_ns_.erase(s);  // (done: a later failure is news)
          }
        }
        in_flight_.clear();
        // Removed while this job ran (or NATS came back meanwhile): now,
        // not at the next retry.
        const bool fresh = !to_delete_.empty() || std::exchange(redo_, false);
        for (auto& f : failed) {
          if (led_(f.stream)) continue;
          if (std::find(to_delete_.begin(), to_delete_.end(), f.stream) == to_delete_.end()) {
            to_delete_.push_back(f.stream);
          }
          int64_t& warned = warned_mono_ns_[f.stream];
          if (warned == 0 || now - warned > kRewarnNs) {
            warned = now;
            spdlog::warn("stream {}: Isthmus' durable readers not deleted yet: {} (tried again every 30 s; each "
                         "keeps every message its region has not stored)",
                         f.stream, f.error);
          }
        }
        if (fresh) delete_now();
      });
}

void DurableCleanup::scan() {
  if (!ctx_.conn || scanned_ || scanning_) return;
  scanning_ = true;
  scan_candidates_.clear();
  scan_page(0, 0);
}

void DurableCleanup::scan_page(uint64_t offset, int page_no) {
  struct Page {
    Status st;
    std::vector<std::string> candidates;
    uint64_t next = 0;
    bool last = true;
  };
  const int64_t tmo = ctx_.timeout_ms();
  ctx_.async<Page>(
      [offset, tmo](natsConnection* nc) {
        Page p;
        if (nc == nullptr) {
          p.st = Status(Code::kUnavailable, "NATS connection down");
          return p;
        }
        auto page = nats::stream_list(nc, offset, tmo);
        if (!page) {
          p.st = page.status();
          return p;
        }
        const Json& list = (*page)["streams"];
        if (!list.is_array()) return p;
        for (const Json& si : list) {
          if (!si.is_object() || !si.contains("config") || !si["config"].is_object()) continue;
          if (si["config"].value("retention", std::string()) != "interest") continue;
          if (si.contains("state") && si["state"].value("consumer_count", uint64_t{1}) == 0) continue;
          p.candidates.push_back(si["config"].value("name", std::string()));
        }
        p.next = offset + list.size();
        p.last = list.empty() || p.next >= page->value("total", uint64_t{0});
        return p;
      },
      [this, page_no](Page p) {
        if (!p.st) {
          // Again in a minute; after three failures (a LIST the user may
          // not send times out each time), not at all.
          scanning_ = false;
          scan_tried_mono_ns_ = loop::mono_ns();
          if (++scan_stalls_ >= 3) scanned_ = true;
          spdlog::debug("replication: cannot list streams to look for Isthmus durables on unconfigured ones: {}{}",
                        p.st.message(), scanned_ ? " (given up)" : " (tried again in a minute)");
          return;
        }
        for (auto& c : p.candidates) {
          const bool queued = std::find(to_delete_.begin(), to_delete_.end(), c) != to_delete_.end() ||
                              std::find(in_flight_.begin(), in_flight_.end(), c) != in_flight_.end();
          if (!configured_(c) && !queued && !scan_named_.count(c)) scan_candidates_.push_back(std::move(c));
        }
        if (!p.last && page_no + 1 < kMaxListPages) {
          scan_page(p.next, page_no + 1);
          return;
        }
        scan_consumers(0);
      });
}

void DurableCleanup::scan_consumers(size_t from) {
  if (from >= scan_candidates_.size()) {
    scanning_ = false;
    scanned_ = true;
    scan_candidates_.clear();
    return;
  }
  const size_t to = std::min(scan_candidates_.size(), from + kStreamsPerJob);
  std::vector<std::string> chunk(scan_candidates_.begin() + static_cast<std::ptrdiff_t>(from),
                                 scan_candidates_.begin() + static_cast<std::ptrdiff_t>(to));
  struct Found {
    bool stalled = false;
    std::vector<std::pair<std::string, std::vector<std::string>>> left;  // stream, its Isthmus durables
  };
  const int64_t tmo = ctx_.timeout_ms();
  ctx_.async<Found>(
      [chunk, tmo](natsConnection* nc) {
        Found f;
        for (const auto& stream : chunk) {
          if (nc == nullptr) {
            f.stalled = true;
            break;
          }
          auto names = nats::consumer_names(nc, stream, tmo);
          if (!names) {
            if (names.status().code() == Code::kTimeout) {  // (a server that answers nothing: later)
              f.stalled = true;
              break;
            }
            continue;
          }
          std::vector<std::string> durables;
          for (const auto& n : *names) {
            if (!durable_region(n).empty()) durables.push_back(n);
          }
          if (!durables.empty()) f.left.push_back({stream, std::move(durables)});
        }
        return f;
      },
      [this, to](Found f) {
        for (const auto& [stream, durables] : f.left) {
          if (configured_(stream) || !scan_named_.insert(stream).second) continue;  // (added by reload since)
          leftover_[stream] = durables;
          rechecked_mono_ns_ = loop::mono_ns();
          std::string list;
          for (const auto& d : durables) list += (list.empty() ? "" : ", ") + d;
          spdlog::warn("stream {} is not in this daemon's configuration, yet Isthmus' durable reader(s) {} "
                       "remain on it (the stream was removed at a restart): each keeps every message its "
                       "region has not stored. Delete them (nats consumer rm {} NAME), or add the stream back "
                       "and remove it by reload, which deletes them",
                       stream, list, stream);
        }
        if (f.stalled) {
          // Again in a minute (a server that answers nothing now), what
          // was named not again; after three such tries, not at all.
          scanning_ = false;
          scan_tried_mono_ns_ = loop::mono_ns();
          if (++scan_stalls_ >= 3) {
            scanned_ = true;
            spdlog::debug("replication: the look for Isthmus durables on unconfigured streams stopped: the server "
                          "does not answer");
          }
          return;
        }
        scan_consumers(to);
      });
}

void DurableCleanup::recheck() {
  if (!ctx_.conn || rechecking_) return;
  rechecking_ = true;
  rechecked_mono_ns_ = loop::mono_ns();
  // At most kStreamsPerJob streams a round, taking turns, so other NATS
  // work runs in between.
  std::vector<std::string> streams;
  for (auto it = leftover_.upper_bound(recheck_after_); it != leftover_.end() && streams.size() < kStreamsPerJob; ++it) {
    streams.push_back(it->first);
  }
  for (auto it = leftover_.begin(); it != leftover_.end() && streams.size() < kStreamsPerJob; ++it) {
    if (it->first > recheck_after_) break;  // (taken above)
    streams.push_back(it->first);
  }
  recheck_after_ = streams.empty() ? std::string() : streams.back();
  if (leftover_.size() <= kStreamsPerJob) recheck_after_.clear();  // (all of them each round)
  struct Seen {
    std::string stream;
    bool known = false;  // the listing answered (or the stream is gone)
    std::vector<std::string> durables;
  };
  struct Round {
    std::vector<Seen> seen;
    bool timed_out = false;
  };
  const int64_t tmo = ctx_.timeout_ms();
  ctx_.async<Round>(
      [streams, tmo](natsConnection* nc) {
        Round r;
        std::vector<Seen>& seen = r.seen;
        for (const auto& stream : streams) {
          if (nc == nullptr) break;
          Seen s{stream, false, {}};
          auto names = nats::consumer_names(nc, stream, tmo);
          if (names) {
            s.known = true;
            for (const auto& n : *names) {
              if (!durable_region(n).empty()) s.durables.push_back(n);
            }
          } else if (names.status().code() == Code::kNotFound) {
            s.known = true;  // (the stream itself deleted)
          } else if (names.status().code() == Code::kTimeout) {
            r.timed_out = true;  // (a server that answers nothing: the next round, later)
            break;
          }
          seen.push_back(std::move(s));
        }
        return r;
      },
      [this](Round r) {
        rechecking_ = false;
        // A server that answers nothing is asked less and less often (each
        // round holds the NATS worker for a timeout), back to every 5 s
        // once it answers.
        recheck_ns_ = r.timed_out ? std::min(recheck_ns_ * 2, kRecheckMaxNs) : kRecheckNs;
        for (auto& s : r.seen) {
          auto it = leftover_.find(s.stream);
          if (it == leftover_.end() || !s.known) continue;  // (led here again meanwhile, or no answer)
          if (s.durables.empty()) {
            spdlog::info("stream {}: no Isthmus durable reader is left on it any more", s.stream);
            leftover_.erase(it);
          } else {
            it->second = std::move(s.durables);
          }
        }
      });
}

}  // namespace isthmus::replication
