// TLS context: the CA, certificate and key of this region, for both roles
// (dialer = TLS client, listener = TLS server). TLS 1.3 only, always mutual:
// each side presents a certificate signed by the configured CA, and each
// checks the other's (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT).
// Peer names and pins are per connection (TlsLayer).
//
// Pure OpenSSL, no libuv. Thread-safety: immutable after create(); shared by
// the layers of every link (shared_ptr).
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "util/status.h"

namespace isthmus::tls {

using Sha256 = std::array<uint8_t, 32>;

// Parses 64 hex digits (case-insensitive, ':' separators allowed).
std::optional<Sha256> parse_pin(const std::string& hex);
std::string pin_hex(const Sha256& pin);
// SHA-256 of the DER SubjectPublicKeyInfo of a certificate.
Sha256 spki_sha256(X509* cert);

class TlsContext {
 public:
  struct Options {
    std::string ca_file;    // PEM: the CA(s) that sign region certificates
    std::string cert_file;  // PEM: this region's certificate (chain)
    std::string key_file;   // PEM: its private key
    // Tests only: act as an old peer that offers TLS 1.2 and nothing newer.
    bool test_tls12_only = false;
  };

  // Loads the files; every error names the file and OpenSSL's reason.
  static Result<std::shared_ptr<TlsContext>> create(const Options& opts);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

// The last OpenSSL errors of this thread as one string (and clears them).
std::string openssl_errors();

}  // namespace isthmus::tls
