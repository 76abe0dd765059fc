// A nats-server without JetStream for client tests: listens on 127.0.0.1
// (free ports), max_payload 64 KiB, plus the caller's configuration lines
// (tls {...}, authorization, operator mode...). Ready once its monitoring
// port answers /healthz, so it needs no client connection of its own (and
// none that a TLS or auth setting would refuse). For JetStream and restarts,
// see nats_server.h.
// Lifetime: started by the constructor (throws if it is not ready within
// 20 s), killed when destroyed.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "process.h"
#include "util.h"

namespace harness {

class BareNatsServer {
 public:
  BareNatsServer(const TempDir& tmp, const std::string& name, const std::string& extra_config);
  BareNatsServer(const BareNatsServer&) = delete;
  BareNatsServer& operator=(const BareNatsServer&) = delete;

  uint16_t port() const { return port_; }
  void kill() { proc_.kill(); }
  // The monitoring endpoint's /connz (client connections, with
  // tls_version for TLS ones).
  nlohmann::json connz();

 private:
  uint16_t port_, monitor_;
  Process proc_;
};

}  // namespace harness
