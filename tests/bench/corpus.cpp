#include "corpus.h"

#include <array>
#include <cstdio>

namespace isthmus::bench {
namespace {

struct Country {
  const char* code;
  const char* name;
};
constexpr Country kCountries[] = {
    {"USA", "United States"}, {"NLD", "Netherlands"},   {"AUS", "Australia"},     {"DEU", "Germany"},
    {"GBR", "United Kingdom"}, {"FRA", "France"},       {"JPN", "Japan"},         {"BRA", "Brazil"},
    {"CAN", "Canada"},         {"IND", "India"},        {"SGP", "Singapore"},     {"ZAF", "South Africa"},
    {"MEX", "Mexico"},         {"ESP", "Spain"},        {"SWE", "Sweden"},        {"NZL", "New Zealand"},
};
constexpr const char* kRegions[] = {"iad", "ams", "syd"};
constexpr const char* kStreams[] = {"COVENANT_COUNTRIES", "COVENANT_PROJECTS", "COVENANT_USERS", "ALERTS_INCIDENTS"};
constexpr const char* kTypes[] = {"user.login",      "user.logout",     "user.updated",   "project.created",
                                  "project.updated", "project.archived", "incident.opened", "incident.resolved",
                                  "alert.fired",     "country.updated"};
constexpr const char* kFirst[] = {"Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances",
                                  "Alan", "Radia", "Edsger", "Sophie"};
constexpr const char* kLast[] = {"Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov",
                                 "Ritchie", "Allen", "Turing", "Perlman", "Dijkstra", "Wilson"};
constexpr const char* kAgents[] = {"Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
                                   "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15",
                                   "nats.go/1.34.0", "nats.c/3.8.0", "curl/7.88.1", "covenant-cli/2.3.1"};
constexpr const char* kPlans[] = {"free", "team", "business", "enterprise"};
constexpr const char* kLevels[] = {"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"};
constexpr const char* kLogMsgs[] = {"link up", "heartbeat rtt_us=%u", "applied batch msgs=%u",
                                    "ack seq=%u", "lag_ms=%u", "flush bytes=%u", "reconnect attempt=%u"};

constexpr char kHex[] = "0123456789abcdef";
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

template <typename T, size_t N>
const T& pick(EventGenerator& g, const T (&arr)[N]) {
  return arr[g.uniform(N)];
}

void append_hex(EventGenerator& g, std::string& s, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    uint64_t v = g.next_u64();
    for (size_t k = 0; k < 16 && i + k < n; ++k, v >>= 4) s.push_back(kHex[v & 15]);
  }
}
void append_b64(EventGenerator& g, std::string& s, size_t n) {
  for (size_t i = 0; i < n; i += 10) {
    uint64_t v = g.next_u64();
    for (size_t k = 0; k < 10 && i + k < n; ++k, v >>= 6) s.push_back(kB64[v & 63]);
  }
}

std::string iso_time(uint64_t ms) {
  // Day of month wraps within May 2024; only the shape matters.
  const uint64_t s = ms / 1000;
  char buf[40];
  std::snprintf(buf, sizeof buf, "2024-05-%02uT%02u:%02u:%02u.%03uZ", static_cast<unsigned>(1 + (s / 86400) % 28),
                static_cast<unsigned>((s / 3600) % 24), static_cast<unsigned>((s / 60) % 60),
                static_cast<unsigned>(s % 60), static_cast<unsigned>(ms % 1000));
  return buf;
}

}  // namespace

std::string_view corpus_name(CorpusKind kind) {
  switch (kind) {
    case CorpusKind::kJsonEvents: return "json_events";
    case CorpusKind::kSmallRecords: return "small_records";
    case CorpusKind::kLogLines: return "log_lines";
    case CorpusKind::kRandom: return "random";
  }
  return "?";
}

std::optional<CorpusKind> corpus_from_name(std::string_view name) {
  for (CorpusKind k : kAllCorpusKinds)
    if (corpus_name(k) == name) return k;
  return std::nullopt;
}

EventGenerator::EventGenerator(uint64_t seed)
    : state_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull), clock_ms_(1714564800000ull) {}

uint64_t EventGenerator::next_u64() {  // splitmix64
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string EventGenerator::next_json_event() {
  clock_ms_ += 1 + uniform(40);
  ++seq_;
  const Country& c = pick(*this, kCountries);
  const unsigned user = static_cast<unsigned>(uniform(50000));
  std::string s;
  s.reserve(512);
  s += "{\"id\":\"evt_";
  append_hex(*this, s, 24);
  s += "\",\"ts\":\"" + iso_time(clock_ms_) + "\",\"ts_ms\":" + std::to_string(clock_ms_);
  s += ",\"type\":\"";
  s += pick(*this, kTypes);
  s += "\",\"stream\":\"";
  s += pick(*this, kStreams);
  s += "\",\"region\":\"";
  s += pick(*this, kRegions);
  s += "\",\"seq\":" + std::to_string(1000000 + seq_);
  s += ",\"country\":{\"code\":\"";
  s += c.code;
  s += "\",\"name\":\"";
  s += c.name;
  s += "\"},\"user\":{\"id\":\"usr_" + std::to_string(100000 + user) + "\",\"name\":\"";
  s += kFirst[user % 12];
  s += ' ';
  s += kLast[(user / 12) % 12];
  s += "\",\"email\":\"" + std::string(kFirst[user % 12]) + "." + std::to_string(user) + "@example.com\",\"plan\":\"";
  s += kPlans[user % 4];
  s += "\"},\"client\":{\"ip\":\"" + std::to_string(10 + uniform(200)) + "." + std::to_string(uniform(256)) + "." +
       std::to_string(uniform(256)) + "." + std::to_string(uniform(256)) + "\",\"ua\":\"";
  s += pick(*this, kAgents);
  s += "\",\"session\":\"";
  append_b64(*this, s, 32);
  s += "\"},\"project\":{\"id\":\"prj_" + std::to_string(uniform(2000)) + "\",\"tier\":" +
       std::to_string(uniform(4)) + "},\"trace_id\":\"";
  append_hex(*this, s, 32);
  s += "\",\"ok\":";
  s += uniform(10) ? "true" : "false";
  s += "}";
  return s;
}

std::string EventGenerator::next_small_record() {
  const Country& c = pick(*this, kCountries);
  return std::string("{\"code\":\"") + c.code + "\",\"name\":\"" + c.name + "\"}";
}

std::string EventGenerator::next_log_line() {
  clock_ms_ += 1 + uniform(200);
  char msg[64];
  std::snprintf(msg, sizeof msg, pick(*this, kLogMsgs), static_cast<unsigned>(uniform(100000)));
  std::string s = iso_time(clock_ms_);
  s += ' ';
  s += pick(*this, kLevels);
  s += " isthmusd[" + std::to_string(1200 + uniform(4)) + "]: region=";
  s += pick(*this, kRegions);
  s += " stream=";
  s += pick(*this, kStreams);
  s += " peer=";
  s += pick(*this, kRegions);
  s += ' ';
  s += msg;
  return s;
}

void EventGenerator::fill_random(std::span<uint8_t> out) {
  for (size_t i = 0; i < out.size(); i += 8) {
    uint64_t v = next_u64();
    for (size_t k = 0; k < 8 && i + k < out.size(); ++k, v >>= 8) out[i + k] = static_cast<uint8_t>(v);
  }
}

std::string EventGenerator::next(CorpusKind kind, size_t random_size) {
  switch (kind) {
    case CorpusKind::kJsonEvents: return next_json_event();
    case CorpusKind::kSmallRecords: return next_small_record();
    case CorpusKind::kLogLines: return next_log_line();
    case CorpusKind::kRandom: {
      std::string s(random_size, '\0');
      fill_random(std::span<uint8_t>(reinterpret_cast<uint8_t*>(s.data()), s.size()));
      return s;
    }
  }
  return {};
}

std::vector<uint8_t> generate_corpus(CorpusKind kind, size_t size, uint64_t seed) {
  EventGenerator g(seed);
  std::vector<uint8_t> out;
  out.reserve(size + 512);
  if (kind == CorpusKind::kRandom) {
    out.resize(size);
    g.fill_random(out);
    return out;
  }
  while (out.size() < size) {
    const std::string r = g.next(kind);
    out.insert(out.end(), r.begin(), r.end());
    out.push_back('\n');
  }
  out.resize(size);
  return out;
}

}  // namespace isthmus::bench
