// isthmusd: arguments, configuration check, run. Everything else is in the
// core library (app::run).
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "app/app.h"
#include "app/logging.h"
#include "config/config.h"
#include "isthmus_build.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: isthmusd --config FILE      run the daemon\n"
               "       isthmusd --check-config FILE validate the configuration and exit\n"
               "       isthmusd --version           print the version\n");
}

int load(const std::string& path, isthmus::config::Config& out) {
  auto r = isthmus::config::load_file(path);
  if (!r.ok()) {
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    std::fprintf(stderr, "isthmusd: %zu error(s) in %s\n", r.errors.size(), path.c_str());
    return 2;
  }
  out = std::move(r.config);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Until the daemon installs its handler (app::run, once it is serving),
  // a SIGHUP (a reload sent right after start) must not end it: the
  // default action terminates, and systemd takes that for a clean exit.
  std::signal(SIGHUP, SIG_IGN);
  std::string config_path;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--version" || a == "-V") {
      std::printf("isthmusd %s\n", ISTHMUS_VERSION);
      return 0;
    }
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    }
    if ((a == "--config" || a == "-c" || a == "--check-config") && i + 1 < argc) {
      check = check || a == "--check-config";
      config_path = argv[++i];
      continue;
    }
    if (a.rfind("--config=", 0) == 0) {
      config_path = a.substr(9);
      continue;
    }
    if (a.rfind("--check-config=", 0) == 0) {
      check = true;
      config_path = a.substr(15);
      continue;
    }
    if (a == "--check-config") {
      check = true;
      continue;
    }
    if (a == "--config" || a == "-c") {
      std::fprintf(stderr, "isthmusd: %s needs a FILE\n", a.c_str());
      usage(stderr);
      return 2;
    }
    std::fprintf(stderr, "isthmusd: unknown argument '%s'\n", a.c_str());
    usage(stderr);
    return 2;
  }
  if (config_path.empty()) {
    usage(stderr);
    return 2;
  }
  isthmus::config::Config cfg;
  if (int rc = load(config_path, cfg); rc != 0) return rc;
  if (check) {
    std::printf("%s: configuration OK (region %s, %zu peer(s), %zu stream(s))\n", config_path.c_str(),
                cfg.region.name.c_str(), cfg.peers.size(), cfg.streams.size());
    return 0;
  }
  if (auto st = isthmus::app::setup_logging(cfg.log.level, cfg.log.format); !st) {
    std::fprintf(stderr, "isthmusd: %s\n", st.message().c_str());
    return 2;
  }
  return isthmus::app::run(cfg);
}
