// s2tool: S2 block/stream compression on stdin -> stdout, used by the
// interop tests and handy for operators.
//   s2tool compress   --block|--stream [--snappy] [--block-size N]
//   s2tool decompress --block|--stream [--max-chunk N]
// Exits 1 with a message on stderr for corrupt input, 2 for usage errors.
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "codec/s2_block.h"
#include "codec/s2_stream.h"

using namespace isthmus;
using namespace isthmus::codec;

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: s2tool compress --block|--stream [--snappy] [--block-size N]\n"
               "       s2tool decompress --block|--stream [--max-chunk N]\n"
               "Reads standard input, writes standard output.\n");
  return 2;
}

std::vector<uint8_t> read_all() {
  std::vector<uint8_t> buf;
  uint8_t tmp[1 << 16];
  size_t n;
  while ((n = std::fread(tmp, 1, sizeof tmp, stdin)) > 0) buf.insert(buf.end(), tmp, tmp + n);
  return buf;
}

bool write_all(std::span<const uint8_t> d) {
  return d.empty() || std::fwrite(d.data(), 1, d.size(), stdout) == d.size();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string_view cmd = argv[1];
  bool block = false, stream = false, snappy = false;
  size_t block_size = kDefaultBlockSize, max_chunk = kS2MaxChunkSize;
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--block") {
      block = true;
    } else if (a == "--stream") {
      stream = true;
    } else if (a == "--snappy") {
      snappy = true;
    } else if ((a == "--block-size" || a == "--max-chunk") && i + 1 < argc) {
      (a == "--block-size" ? block_size : max_chunk) = std::stoul(argv[++i]);
    } else {
      return usage();
    }
  }
  if (block == stream) return usage();

  if (cmd == "compress") {
    const auto in = read_all();
    if (in.size() > kMaxBlockSize && block) {
      std::fprintf(stderr, "s2tool: input too large for one block\n");
      return 1;
    }
    std::vector<uint8_t> out;
    if (block) {
      out = encode_block(in, EncodeOptions{snappy});
    } else {
      out = encode_stream(in, StreamWriter::Options{.block_size = block_size, .snappy_compatible = snappy});
    }
    return write_all(out) && std::fflush(stdout) == 0 ? 0 : 1;
  }
  if (cmd == "decompress") {
    if (block) {
      const auto in = read_all();
      auto r = decode_block(in, kMaxBlockSize);
      if (!r.is_ok()) {
        std::fprintf(stderr, "s2tool: %s\n", r.status().to_string().c_str());
        return 1;
      }
      return write_all(*r) && std::fflush(stdout) == 0 ? 0 : 1;
    }
    // Streams are decoded incrementally, as a network reader would.
    StreamReader reader(StreamReader::Options{.max_chunk_size = max_chunk});
    uint8_t tmp[1 << 16];
    size_t n;
    auto sink = [](std::span<const uint8_t> chunk) {
      return write_all(chunk) ? Status::ok() : Status(Code::kIo, "write to stdout failed");
    };
    while ((n = std::fread(tmp, 1, sizeof tmp, stdin)) > 0) {
      Status st = reader.feed(std::span<const uint8_t>(tmp, n), sink);
      if (!st) {
        std::fprintf(stderr, "s2tool: %s\n", st.to_string().c_str());
        return 1;
      }
    }
    Status st = reader.finish();
    if (!st) {
      std::fprintf(stderr, "s2tool: %s\n", st.to_string().c_str());
      return 1;
    }
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  return usage();
}
