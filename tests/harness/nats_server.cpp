#include "nats_server.h"

#include <unistd.h>

#include <csignal>

#include <iostream>

#include "http_client.h"
#include "jetstream.h"
#include "util.h"

namespace harness {

std::string NatsServer::binary() {
  std::string env = env_or("NATS_SERVER", "");
  if (!env.empty()) return env;
  for (const char* p : {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"})
    if (::access(p, X_OK) == 0) return p;
  throw Fatal("nats-server not found (set NATS_SERVER or install Debian's nats-server)");
}

NatsServer::NatsServer(std::string name, std::string dir, uint16_t port)
    : name_(std::move(name)),
      dir_(std::move(dir)),
      conf_(dir_ + "/nats-server.conf"),
      log_(dir_ + "/nats-server.log"),
      port_(port != 0 ? port : free_port()),
      monitor_port_(free_port()) {
  std::string conf;
  conf += "# written by the isthmus integration-test harness\n";
  conf += "server_name: \"" + name_ + "\"\n";
  conf += "listen: \"127.0.0.1:" + std::to_string(port_) + "\"\n";
  conf += "http: \"127.0.0.1:" + std::to_string(monitor_port_) + "\"\n";
  conf += "max_payload: 8MB\n";
  conf += "jetstream {\n  store_dir: \"" + store_dir() + "\"\n}\n";
  write_file(conf_, conf);
}

NatsServer::~NatsServer() {
  if (test_failed() && !log_.empty()) {
    std::cerr << "[harness] nats-server " << name_ << " (port " << port_ << ") log tail, "
              << log_ << ":\n"
              << tail_file(log_, 20);
  }
  proc_.kill();
}

void NatsServer::append_config(const std::string& lines) { write_file(conf_, read_file(conf_) + lines + "\n"); }

void NatsServer::reload() { proc_.signal(SIGHUP); }

nlohmann::json NatsServer::connz() {
  auto r = http_get(monitor_port_, "/connz", std::chrono::seconds(2));
  if (r.status != 200) throw std::runtime_error("nats-server " + name_ + " /connz: HTTP " + std::to_string(r.status));
  return nlohmann::json::parse(r.body);
}

void NatsServer::spawn() { proc_.spawn({binary(), "-c", conf_}, log_); }

void NatsServer::start(std::chrono::milliseconds ready_timeout) {
  spawn();
  wait_ready(ready_timeout);
}

void NatsServer::wait_ready(std::chrono::milliseconds timeout) {
  check_for(
      timeout,
      [&](std::string& state) {
        if (!proc_.running())
          throw Fatal("nats-server " + name_ + " exited (" +
                      (proc_.status() ? proc_.status()->to_string() : "?") + "); log " + log_ +
                      ":\n" + tail_file(log_, 20));
        auto h = http_get(monitor_port_, health_path_, std::chrono::seconds(2));
        if (h.status != 200) {
          state = health_path_ + " " + std::to_string(h.status) + " " + h.body;
          return false;
        }
        JetStream js(url(), std::chrono::seconds(2), client_options_);
        auto info = js.api("$JS.API.INFO", nullptr, std::chrono::seconds(2));
        state = "JetStream answered: " + info.dump();
        return true;
      },
      "nats-server " + name_ + " on port " + std::to_string(port_) + " ready with JetStream");
}

void NatsServer::stop() {
  auto st = proc_.terminate(std::chrono::seconds(15));
  (void)st;
}

void NatsServer::kill() { proc_.kill(); }

void NatsServer::restart() {
  stop();
  start();
}

}  // namespace harness
