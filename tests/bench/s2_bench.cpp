// s2_bench FILE FRAME_BYTES: one timed pass of Isthmus' S2 block codec over
// FILE cut into frames (each frame an independent block, as one stream chunk
// per flushed batch). Prints the same JSON line as the reference helpers:
// {"input":N,"compressed":N,"encode_ns":T,"decode_ns":T} (ns per full pass).
// Driven by bench-s2.py, which interleaves the implementations.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "codec/s2_block.h"

using namespace isthmus::codec;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: s2_bench FILE FRAME_BYTES\n");
    return 2;
  }
  std::vector<uint8_t> data;
  if (FILE* f = std::fopen(argv[1], "rb")) {
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.insert(data.end(), buf, buf + n);
    std::fclose(f);
  }
  const size_t frame = std::stoul(argv[2]);
  std::vector<std::span<const uint8_t>> frames;
  for (size_t i = 0; i < data.size(); i += frame)
    frames.push_back(std::span<const uint8_t>(data).subspan(i, std::min(frame, data.size() - i)));
  std::vector<std::vector<uint8_t>> comp(frames.size());
  std::vector<size_t> comp_len(frames.size());
  BlockEncoder enc;
  size_t total = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    comp[i].resize(max_encoded_len(frames[i].size()));
    comp_len[i] = enc.encode(frames[i], comp[i]);
    total += comp_len[i];
  }
  std::vector<uint8_t> out(frame);
  for (size_t i = 0; i < frames.size(); ++i) {  // verify once
    auto d = std::span<uint8_t>(out).first(frames[i].size());
    if (!decode_block(std::span<const uint8_t>(comp[i]).first(comp_len[i]), d).is_ok() ||
        !std::equal(d.begin(), d.end(), frames[i].begin())) {
      std::fprintf(stderr, "s2_bench: round trip failed\n");
      return 1;
    }
  }
  using clk = std::chrono::steady_clock;
  auto run = [&](auto&& body) {
    int passes = 0;
    auto start = clk::now();
    while (passes == 0 || clk::now() - start < std::chrono::milliseconds(300)) {
      body();
      ++passes;
    }
    return std::chrono::duration<double, std::nano>(clk::now() - start).count() / passes;
  };
  const double enc_ns = run([&] {
    for (size_t i = 0; i < frames.size(); ++i) comp_len[i] = enc.encode(frames[i], comp[i]);
  });
  const double dec_ns = run([&] {
    for (size_t i = 0; i < frames.size(); ++i) {
      if (!decode_block(std::span<const uint8_t>(comp[i]).first(comp_len[i]), std::span<uint8_t>(out).first(frames[i].size()))
               .is_ok())
        std::abort();
    }
  });
  std::printf("{\"input\":%zu,\"compressed\":%zu,\"encode_ns\":%.0f,\"decode_ns\":%.0f}\n", data.size(), total, enc_ns,
              dec_ns);
  return 0;
}
