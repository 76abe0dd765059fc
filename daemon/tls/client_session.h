// ClientSession: a TLS client over memory BIOs for the data path's
// connection to the local nats-server (nats/data_conn.h). Unlike the links'
// TlsLayer (TLS 1.3, mutual, a private CA), it connects like a NATS client:
// TLS 1.2 or newer, the server's certificate checked against the system's
// trust store (OpenSSL's default paths; SSL_CERT_FILE / SSL_CERT_DIR
// override them) and the URL's host name (or IP address), no client
// certificate.
//
// Pure bytes in/out; no libuv, no sockets. Thread: one connection, loop
// thread only.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "util/status.h"

namespace isthmus::tls {

class ClientSession {
 public:
  static Result<std::unique_ptr<ClientSession>> create(const std::string& host);
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // The ClientHello.
  Status start(std::string& to_net);
  // Network bytes in; application bytes out (after the handshake), plus any
  // bytes to send back. Errors name OpenSSL's reason (a refused
  // certificate: its verify error).
  Status read(std::span<const uint8_t> in, std::string& to_app, std::string& to_net);
  // Application bytes -> records. Only after done().
  Status write(std::span<const uint8_t> in, std::string& to_net);
  bool done() const { return done_; }

 private:
  ClientSession() = default;
  Status step(std::string& to_net);
  void drain(std::string& to_net);

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* net_in_ = nullptr;
  BIO* net_out_ = nullptr;
  bool done_ = false;
  Status error_;
};

}  // namespace isthmus::tls
