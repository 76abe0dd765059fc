// A real nats-server (Debian's 2.9.10) with JetStream, for tests.
//
// Writes a config into its own directory (client port, http monitoring
// port, jetstream store_dir), starts `nats-server -c FILE` and waits until
// it accepts connections and JetStream answers $JS.API.INFO (over TLS or
// with credentials when set_client_options() says how). stop/kill and
// start again keep the same ports and store dir.
// The binary is $NATS_SERVER if set, else /usr/sbin/nats-server or
// /usr/bin/nats-server, whichever exists.
// Lifetime: the server is killed when the fixture is destroyed; on a failed
// test the tail of its log is printed.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "jetstream.h"
#include "process.h"

namespace harness {

class NatsServer {
 public:
  // name: used for server_name and file names; dir: an existing directory
  // that holds config, log and store (e.g. TempDir::subdir(name)).
  NatsServer(std::string name, std::string dir, uint16_t port = 0);
  ~NatsServer();
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  // Appends lines to the server's configuration (takes effect at the next
  // start, or at reload()).
  void append_config(const std::string& lines);
  // What the harness's own clients (the readiness check, Region::js()) need
  // to connect once the configuration requires TLS or credentials.
  void set_client_options(ClientOptions o) { client_options_ = std::move(o); }
  const ClientOptions& client_options() const { return client_options_; }
  // The monitoring port's /connz (client connections: name, tls_version...).
  nlohmann::json connz();
  // SIGHUP: the server reloads its configuration.
  void reload();
  // Starts and waits until ready (throws on timeout, naming the log).
  void start(std::chrono::milliseconds ready_timeout = std::chrono::seconds(20));
  // Starts without waiting.
  void spawn();
  void wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // What wait_ready asks the monitoring port: "/healthz" (the default:
  // every stream and consumer current) or e.g.
  // "/healthz?js-server-only=true" (the server current with its cluster's
  // meta leader, whatever its streams and consumers say).
  void set_health_path(std::string path) { health_path_ = std::move(path); }
  // SIGTERM (graceful: flushes the store), waits for exit.
  void stop();
  // SIGKILL.
  void kill();
  // stop() then start().
  void restart();
  bool running() { return proc_.running(); }

  uint16_t port() const { return port_; }
  uint16_t monitor_port() const { return monitor_port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  const std::string& name() const { return name_; }
  const std::string& log_path() const { return log_; }
  std::string store_dir() const { return dir_ + "/jetstream"; }
  Process& process() { return proc_; }

  static std::string binary();

 private:
  std::string name_, dir_, conf_, log_;
  uint16_t port_, monitor_port_;
  ClientOptions client_options_;
  std::string health_path_ = "/healthz";
  Process proc_;
};

}  // namespace harness
