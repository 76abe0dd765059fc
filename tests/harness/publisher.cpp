#include "publisher.h"

#include <sstream>
#include <stdexcept>

namespace harness {

OutMsg seed_event(const PublishTarget& target, uint64_t i, uint64_t seq) {
  static const char* names[] = {"FR", "DE", "US", "JP", "BR", "NZ", "KE", "IN", "CA", "NO"};
  OutMsg m;
  m.subject = target.subjects[i % target.subjects.size()];
  std::ostringstream p;
  p << "{\"stream\":\"" << target.stream << "\",\"event\":" << i << ",\"subject\":\"" << m.subject
    << "\",\"name\":\"" << names[i % 10] << "\",\"value\":" << (i * 7919) % 100000000 << ",\"note\":\""
    << std::string(i % 97, 'n') << "\"";
  if (target.pad > 0) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string pad(target.pad, 'A');
    uint64_t x = 0x9E3779B97F4A7C15ull * (i + 1);  // xorshift64, seeded by the event number
    for (auto& c : pad) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      c = b64[x & 63];
    }
    p << ",\"pad\":\"" << pad << "\"";
  }
  p << "}";
  m.payload = p.str();
  if (i % 5 == 1) return m;  // no headers at all
  m.headers.emplace_back("X-Event-Index", std::to_string(i));
  m.headers.emplace_back("Content-Type", "application/json");
  if (i % 4 == 0) m.headers.emplace_back("Nats-Msg-Id", target.stream + "-" + std::to_string(i));
  if (i % 7 == 0) {
    m.headers.emplace_back("X-Trace", "a-" + std::to_string(i));
    m.headers.emplace_back("X-Trace", "b-" + std::to_string(i));
  }
  if (i % 11 == 0) m.headers.emplace_back("Nats-Expected-Stream", target.stream);
  if (i % 101 == 0) m.headers.emplace_back("Nats-Expected-Last-Sequence", std::to_string(seq - 1));
  return m;
}

StreamPublisher::StreamPublisher(const std::string& url, std::vector<PublishTarget> targets, unsigned per_tick,
                                 std::chrono::milliseconds every, uint64_t limit, uint64_t first_index)
    : js_(std::make_unique<JetStream>(url)),
      targets_(std::move(targets)),
      per_tick_(per_tick),
      every_(every),
      limit_(limit),
      first_index_(first_index) {
  for (const auto& t : targets_) {
    if (t.subjects.empty()) throw std::runtime_error("publish target " + t.stream + " has no subjects");
    next_seq_[t.stream] = js_->require_stream_info(t.stream).last_seq + 1;
    published_[t.stream] = 0;
  }
  thread_ = std::thread([this] { run(); });
}

StreamPublisher::~StreamPublisher() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void StreamPublisher::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (error_) std::rethrow_exception(error_);
}

void StreamPublisher::join() {
  if (thread_.joinable()) thread_.join();
  if (error_) std::rethrow_exception(error_);
}

uint64_t StreamPublisher::published(const std::string& stream) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = published_.find(stream);
  return it == published_.end() ? 0 : it->second;
}

void StreamPublisher::run() {
  try {
    auto next = std::chrono::steady_clock::now();
    std::map<std::string, uint64_t> index;  // the next event number per stream
    for (const auto& t : targets_) index[t.stream] = first_index_;
    while (!stop_ && (limit_ == 0 || total_ < limit_)) {
      if (every_.count() > 0) {
        std::this_thread::sleep_until(next);  // pacing the load, not waiting for a condition
        next += every_;
      }
      std::vector<OutMsg> msgs;
      std::vector<const PublishTarget*> owner;
      std::map<std::string, uint64_t> seq = next_seq_;
      for (unsigned r = 0; r < per_tick_; ++r)
        for (const auto& t : targets_)
          for (unsigned w = 0; w < t.weight; ++w) {
            msgs.push_back(seed_event(t, index[t.stream]++, seq[t.stream]++));
            owner.push_back(&t);
          }
      if (limit_ > 0 && msgs.size() > limit_ - total_) {
        msgs.resize(limit_ - total_);
        owner.resize(msgs.size());
      }
      auto acks = js_->publish_bulk(msgs, 256);
      for (size_t k = 0; k < acks.size(); ++k) {
        const std::string& s = owner[k]->stream;
        uint64_t want = next_seq_[s];
        if (acks[k].stream != s || acks[k].duplicate || acks[k].seq != want)
          throw std::runtime_error("publisher: " + s + " stored its message at " + acks[k].stream + " seq " +
                                   std::to_string(acks[k].seq) + (acks[k].duplicate ? " (duplicate)" : "") +
                                   ", expected seq " + std::to_string(want));
        next_seq_[s] = want + 1;
        payload_bytes_ += msgs[k].payload.size();
        std::lock_guard<std::mutex> lock(mu_);
        ++published_[s];
      }
      total_ += acks.size();
    }
  } catch (...) {
    error_ = std::current_exception();
    failed_ = true;
  }
  finished_ = true;
}

}  // namespace harness
