// Deterministic benchmark corpora, shared by the S2, link and replication
// benchmarks (and anything else that wants realistic payloads).
//
// Kinds:
//  - json_events: the project's standard payload. One JSON object per line,
//    a few hundred bytes each, in the seed's domain (regions, COVENANT_*
//    streams, countries, users, projects, alerts): ids and timestamps, event
//    types, country code and name, user and client fields, and high-entropy
//    ids and tokens that do not compress.
//  - small_records: the seed's tiny records, e.g.
//    {"code":"USA","name":"United States"}, tens of bytes each.
//  - log_lines: daemon-style log lines.
//  - random: uniformly random bytes (incompressible).
//
// Output depends only on (kind, size, seed): the generator uses its own PRNG
// (no <random> distributions), so it is identical on every platform and
// compiler. Thread-safety: EventGenerator is a plain value, one per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace isthmus::bench {

enum class CorpusKind { kJsonEvents, kSmallRecords, kLogLines, kRandom };

inline constexpr CorpusKind kAllCorpusKinds[] = {CorpusKind::kJsonEvents, CorpusKind::kSmallRecords,
                                                 CorpusKind::kLogLines, CorpusKind::kRandom};

// "json_events", "small_records", "log_lines", "random".
std::string_view corpus_name(CorpusKind kind);
std::optional<CorpusKind> corpus_from_name(std::string_view name);

// Message-at-a-time generator. Each next_*() returns one record without a
// trailing newline.
class EventGenerator {
 public:
  explicit EventGenerator(uint64_t seed = 1);

  std::string next_json_event();   // ~300-450 bytes
  std::string next_small_record();  // ~35-50 bytes
  std::string next_log_line();      // ~100-140 bytes
  void fill_random(std::span<uint8_t> out);
  // One record of the given kind (for kRandom: `random_size` bytes).
  std::string next(CorpusKind kind, size_t random_size = 256);

  uint64_t next_u64();
  uint64_t uniform(uint64_t n) { return next_u64() % n; }

 private:
  uint64_t state_;
  uint64_t seq_ = 0;
  uint64_t clock_ms_;
};

// `size` bytes of the given kind: records joined by '\n' (cut at `size`).
std::vector<uint8_t> generate_corpus(CorpusKind kind, size_t size, uint64_t seed = 1);

}  // namespace isthmus::bench
