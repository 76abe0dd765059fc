// A real isthmusd for tests: writes its TOML config, starts
// `$ISTHMUS_BUILD_DIR/daemon/isthmusd --config FILE` (stderr/stdout to a log
// file), kill -9 / SIGTERM / restart with the same config, HTTP helpers.
// Lifetime: killed when destroyed; on a failed test the log tail is printed.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "http_client.h"
#include "process.h"

namespace harness {

struct IsthmusdConfig {
  struct Peer {
    std::string name;
    uint16_t port = 0;  // the peer daemon's link port on 127.0.0.1
    std::string pin_sha256;   // optional
    std::string compression;  // optional per-peer override
    std::string address;      // optional "host:port" dialed instead of 127.0.0.1:port (e.g. a fault proxy)
  };
  struct Stream {
    std::string name;
    std::string leader;
  };
  std::string region;
  std::vector<std::string> nats_urls;
  uint16_t link_port = 0;
  std::vector<Peer> peers;
  uint16_t http_port = 0;
  std::string http_host = "127.0.0.1";  // http.listen host ("0.0.0.0": every IPv4 address)
  std::vector<Stream> streams;
  std::string log_level = "info";
  // [link.tls]: required with peers; harness::region_certs() makes them.
  std::string tls_ca, tls_cert, tls_key;
  std::string compression;  // link.compression; empty: the default ("s2")
  std::string link_extra;   // TOML lines appended verbatim inside [link] (e.g. handshake_timeout)
  std::string nats_extra;   // TOML lines appended verbatim inside [nats]
  std::string extra;  // TOML appended verbatim (tables for later issues)

  std::string to_toml() const;
};

class Isthmusd {
 public:
  // dir: existing directory for config and log.
  Isthmusd(IsthmusdConfig cfg, std::string dir);
  ~Isthmusd();
  Isthmusd(const Isthmusd&) = delete;
  Isthmusd& operator=(const Isthmusd&) = delete;

  // Rewrites the config file from config() (call after changing it).
  void write_config();
  // Extra environment for the daemon from its next start on (e.g.
  // LD_PRELOAD=libfaketime with FAKETIME=+30s to shift its clock).
  void set_env(Process::Env env) { env_ = std::move(env); }
  IsthmusdConfig& config() { return cfg_; }
  const std::string& config_path() const { return conf_; }
  const std::string& log_path() const { return log_; }
  uint16_t http_port() const { return cfg_.http_port; }
  const std::string& region() const { return cfg_.region; }

  // Spawns, then waits until the HTTP server answers (any status).
  void start(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  void spawn();
  void wait_http(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  ExitStatus kill9();
  // SIGTERM; waits up to `grace` (then SIGKILL). Returns the exit status.
  ExitStatus terminate(std::chrono::milliseconds grace = std::chrono::seconds(15));
  // kill9 (or terminate if graceful) then start with the same config.
  void restart(bool graceful = false);
  bool running() { return proc_.running(); }
  // Throws Fatal (with the log tail) if the daemon is not running.
  void ensure_running(const std::string& context = "");
  Process& process() { return proc_; }

  HttpResponse http_get(const std::string& path,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));
  HttpResponse http_post(const std::string& path, const std::string& body = "",
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // GET /v1/lag parsed (throws unless 200 with JSON).
  nlohmann::json lag();
  // The /v1/lag entry for one stream, or nullopt.
  std::optional<nlohmann::json> lag_stream(const std::string& stream);

  std::string log_tail(int lines = 40) const;
  static std::string binary();

 private:
  IsthmusdConfig cfg_;
  std::string dir_, conf_, log_;
  Process::Env env_;
  Process proc_;
};

}  // namespace harness
