#include "payload.h"

#include <time.h>

#include <chrono>
#include <cstdio>

#include "corpus.h"

namespace loadgen {
namespace {

constexpr size_t kPool = 65536;
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// `{"t":` + 19 digits + `,`
constexpr size_t kStampLen = 5 + 19 + 1;

const char* kCountries[][2] = {{"USA", "United States"}, {"NLD", "Netherlands"}, {"AUS", "Australia"},
                               {"DEU", "Germany"},       {"JPN", "Japan"},       {"BRA", "Brazil"}};

}  // namespace

std::optional<PayloadKind> payload_kind_from_name(std::string_view name) {
  if (name == "country") return PayloadKind::kCountry;
  if (name == "bytes") return PayloadKind::kBytes;
  if (name == "json_events") return PayloadKind::kJsonEvents;
  return std::nullopt;
}

int64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

Payloads::Payloads(PayloadKind kind, long size, uint64_t seed) : kind_(kind), size_(size) {
  isthmus::bench::EventGenerator gen(seed);
  if (kind_ == PayloadKind::kBytes) {
    if (size_ < 64) size_ = 64;
    // {"t":NNN,"p":"<b64>"}  ->  stamp + `"p":"` + b64 + `"}`
    const size_t b64 = static_cast<size_t>(size_) - kStampLen - 5 - 2;
    pool_.reserve(kPool);
    for (size_t i = 0; i < kPool; ++i) {
      std::string s = "\"p\":\"";
      for (size_t k = 0; k < b64; k += 10) {
        uint64_t v = gen.next_u64();
        for (size_t j = 0; j < 10 && k + j < b64; ++j, v >>= 6) s.push_back(kB64[v & 63]);
      }
      s += "\"}";
      pool_.push_back(std::move(s));
    }
  } else if (kind_ == PayloadKind::kJsonEvents) {
    pool_.reserve(kPool);
    for (size_t i = 0; i < kPool; ++i) {
      std::string e = gen.next_json_event();
      pool_.push_back(e.substr(1));  // drop '{'
    }
  }
}

std::string Payloads::make(long i, int64_t now_ns) const {
  if (kind_ == PayloadKind::kCountry) {
    const auto& c = kCountries[i % 6];
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  "{\"id\":\"evt-%08ld\",\"type\":\"country.updated\",\"code\":\"%s\",\"name\":\"%s\","
                  "\"ts\":%lld,\"user\":\"user-%ld\"}",
                  i, c[0], c[1], static_cast<long long>(now_ns), i % 97);
    std::string s(buf);
    if (size_ > 0) {
      while (static_cast<long>(s.size()) < size_) s += ' ';
      s.resize(static_cast<size_t>(size_));
    }
    return s;
  }
  const std::string& body = pool_[static_cast<size_t>(i) % pool_.size()];
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "{\"t\":%019lld,", static_cast<long long>(now_ns));
  std::string s;
  s.reserve(kStampLen + body.size());
  s.append(stamp, kStampLen);
  s += body;
  return s;
}

std::optional<int64_t> read_stamp(std::string_view p) {
  if (p.size() < kStampLen || p.substr(0, 5) != "{\"t\":" || p[kStampLen - 1] != ',') return std::nullopt;
  int64_t v = 0;
  for (size_t k = 5; k < 5 + 19; ++k) {
    char c = p[k];
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace loadgen
