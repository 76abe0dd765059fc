// Corpus replay for the libFuzzer drivers, for compilers without libFuzzer:
// feeds every file named on the command line (directories are walked) to
// LLVMFuzzerTestOneInput once. Built under ASan+UBSan as a regression test.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace fs = std::filesystem;

static bool run_file(const fs::path& p) {
  FILE* f = std::fopen(p.c_str(), "rb");
  if (!f) {
    std::fprintf(stderr, "FAIL cannot read %s\n", p.c_str());
    return false;
  }
  std::vector<uint8_t> buf;
  uint8_t tmp[1 << 16];
  size_t n;
  while ((n = std::fread(tmp, 1, sizeof tmp, f)) > 0) buf.insert(buf.end(), tmp, tmp + n);
  std::fclose(f);
  LLVMFuzzerTestOneInput(buf.data(), buf.size());
  return true;
}

int main(int argc, char** argv) {
  size_t n = 0;
  bool ok = true;
  for (int i = 1; i < argc; ++i) {
    fs::path p(argv[i]);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::recursive_directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) ok = run_file(f) && ok, ++n;
    } else {
      ok = run_file(p) && ok;
      ++n;
    }
  }
  std::printf("%s: replayed %zu inputs\n", ok ? "PASS" : "FAIL", n);
  return ok && n > 0 ? 0 : 1;
}
