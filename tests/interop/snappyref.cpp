// snappyref: Google's libsnappy as a second reference for the interop tests
// and the S2 benchmark. libsnappy has no framing code, so the Snappy framing
// format (identifier "sNaPpY", <= 64 KiB chunks, masked CRC-32C) is written
// here, with its own bitwise CRC so that it shares nothing with Isthmus.
//
//   snappyref encode-dir IN_DIR OUT_DIR   -> OUT_DIR/<file>.block, <file>.stream
//   snappyref check-dir IN_DIR ENC_DIR    libsnappy-decode ENC_DIR/<file>.block*
//   snappyref bench FILE FRAME_BYTES      one timed pass, JSON on stdout
#include <snappy.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
  std::string s;
  if (FILE* f = std::fopen(p.c_str(), "rb")) {
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    std::fclose(f);
  }
  return s;
}
void write_file(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f.write(s.data(), static_cast<std::streamsize>(s.size()));
}

uint32_t masked_crc(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  c ^= 0xFFFFFFFFu;
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

void put_chunk(std::string& out, uint8_t type, const std::string& payload) {
  out.push_back(static_cast<char>(type));
  for (int i = 0; i < 3; ++i) out.push_back(static_cast<char>((payload.size() >> (8 * i)) & 0xff));
  out += payload;
}

std::string frame(const std::string& data) {
  std::string out;
  if (data.empty()) return out;
  put_chunk(out, 0xff, "sNaPpY");
  for (size_t i = 0; i < data.size(); i += 65536) {
    const std::string piece = data.substr(i, 65536);
    const uint32_t crc = masked_crc(piece);
    std::string payload(4, '\0');
    for (int k = 0; k < 4; ++k) payload[static_cast<size_t>(k)] = static_cast<char>((crc >> (8 * k)) & 0xff);
    std::string comp;
    snappy::Compress(piece.data(), piece.size(), &comp);
    if (comp.size() < piece.size()) {
      put_chunk(out, 0x00, payload + comp);
    } else {
      put_chunk(out, 0x01, payload + piece);
    }
    if (i == 0 && data.size() > 65536 * 2) put_chunk(out, 0xfe, std::string(7, '\0'));  // some padding too
  }
  return out;
}

std::vector<fs::path> files(const fs::path& dir) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

int bench(const char* file, size_t frame_size) {
  const std::string data = read_file(file);
  std::vector<std::string> frames;
  for (size_t i = 0; i < data.size(); i += frame_size) frames.push_back(data.substr(i, frame_size));
  std::vector<std::string> comp(frames.size());
  std::vector<char> out(frame_size);
  size_t total = 0;
  for (size_t i = 0; i < frames.size(); ++i) total += snappy::Compress(frames[i].data(), frames[i].size(), &comp[i]);
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
  const double enc = run([&] {
    for (size_t i = 0; i < frames.size(); ++i) snappy::Compress(frames[i].data(), frames[i].size(), &comp[i]);
  });
  const double dec = run([&] {
    for (size_t i = 0; i < frames.size(); ++i)
      if (!snappy::RawUncompress(comp[i].data(), comp[i].size(), out.data())) std::abort();
  });
  std::printf("{\"input\":%zu,\"compressed\":%zu,\"encode_ns\":%.0f,\"decode_ns\":%.0f}\n", data.size(), total, enc,
              dec);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const std::string cmd = argv[1];
  if (cmd == "encode-dir" && argc == 4) {
    for (const auto& f : files(argv[2])) {
      const std::string data = read_file(f);
      std::string comp;
      snappy::Compress(data.data(), data.size(), &comp);
      write_file(fs::path(argv[3]) / (f.filename().string() + ".block"), comp);
      write_file(fs::path(argv[3]) / (f.filename().string() + ".stream"), frame(data));
    }
    return 0;
  }
  if (cmd == "check-dir" && argc == 4) {
    int failed = 0;
    for (const auto& f : files(argv[3])) {
      const std::string name = f.filename().string();
      const auto dot = name.rfind('.');
      if (dot == std::string::npos || name.compare(dot + 1, 5, "block") != 0) continue;
      const std::string want = read_file(fs::path(argv[2]) / name.substr(0, dot));
      const std::string enc = read_file(f);
      std::string got;
      const bool ok = snappy::Uncompress(enc.data(), enc.size(), &got) && got == want;
      std::printf("%s libsnappy-decode %s\n", ok ? "PASS" : "FAIL", name.c_str());
      failed += !ok;
    }
    return failed ? 1 : 0;
  }
  if (cmd == "bench" && argc == 4) return bench(argv[2], std::stoul(argv[3]));
  return 2;
}
