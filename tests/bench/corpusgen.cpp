// corpusgen KIND SIZE [SEED]: writes a deterministic corpus to stdout.
// KIND: json_events | small_records | log_lines | random.
#include <cstdio>
#include <string>

#include "corpus.h"

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: corpusgen json_events|small_records|log_lines|random SIZE [SEED]\n");
    return 2;
  }
  auto kind = isthmus::bench::corpus_from_name(argv[1]);
  if (!kind) {
    std::fprintf(stderr, "corpusgen: unknown kind %s\n", argv[1]);
    return 2;
  }
  const auto data = isthmus::bench::generate_corpus(*kind, std::stoull(argv[2]), argc == 4 ? std::stoull(argv[3]) : 1);
  return std::fwrite(data.data(), 1, data.size(), stdout) == data.size() ? 0 : 1;
}
