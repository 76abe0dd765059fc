// TlsLayer: one TLS 1.3 session over memory BIOs, as a link::Layer. OpenSSL
// never touches the socket: read() takes bytes from the network and returns
// application bytes plus handshake bytes to send (`to_net`); write() takes
// application bytes and returns records. Application bytes written before
// the handshake completes are buffered and sent once it does.
//
// Peer identity (checked during the handshake, in the verify callback, so a
// refused peer gets an alert):
//  - the certificate chains to the context's CA (else kCertRejected, with
//    OpenSSL's verify error: "certificate has expired", "unable to get local
//    issuer certificate", ...);
//  - its DNS subject alternative names include one of `names` (the dialer
//    passes the one peer it dials; the listener every configured peer). The
//    first configured name found is peer_name(); else kNameMismatch;
//  - if a pin is configured for that name, SHA-256 of the certificate's
//    SubjectPublicKeyInfo equals it; else kPinMismatch.
// Any other handshake failure (no certificate, TLS 1.2 only, garbage) is
// kTlsHandshakeFailed. The deadline is the caller's (link.handshake_timeout).
//
// Pure bytes in/out; no libuv. Thread-safety: one link, loop thread only.
#pragma once

#include <openssl/ssl.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "link/layer.h"
#include "tls/tls_context.h"

namespace isthmus::tls {

class TlsLayer : public link::Layer {
 public:
  enum class Role { kClient, kServer };
  struct Peer {
    std::vector<std::string> names;       // acceptable peer names (DNS SAN)
    std::map<std::string, Sha256> pins;   // optional pin per name
  };

  TlsLayer(std::shared_ptr<TlsContext> ctx, Role role, Peer peer);
  ~TlsLayer() override;
  TlsLayer(const TlsLayer&) = delete;
  TlsLayer& operator=(const TlsLayer&) = delete;

  // A client emits its ClientHello on the first write() (or start()).
  Status start(std::vector<uint8_t>& to_net);
  Status write(std::span<const uint8_t> in, bool flush, std::vector<uint8_t>& to_net) override;
  Status read(std::span<const uint8_t> in, std::vector<uint8_t>& to_app,
              std::vector<uint8_t>& to_net) override;
  link::CloseReason failure_reason() const override { return reason_; }

  bool handshake_done() const { return done_; }
  // The configured name the peer's certificate carries (after the handshake).
  const std::string& peer_name() const { return peer_name_; }
  // True once the peer sent close_notify.
  bool peer_closed() const { return peer_closed_; }

 private:
  static int verify_cb(int preverify_ok, X509_STORE_CTX* store);
  int verify(int preverify_ok, X509_STORE_CTX* store);
  Status step_handshake(std::vector<uint8_t>& to_net);
  Status seal(std::span<const uint8_t> in, std::vector<uint8_t>& to_net);
  void drain(std::vector<uint8_t>& to_net);
  Status fail(link::CloseReason reason, std::string detail);

  std::shared_ptr<TlsContext> ctx_;
  SSL* ssl_ = nullptr;
  BIO* net_in_ = nullptr;   // network -> SSL (owned by ssl_)
  BIO* net_out_ = nullptr;  // SSL -> network (owned by ssl_)
  Role role_;
  Peer peer_;
  std::string peer_name_;
  bool done_ = false;
  bool peer_closed_ = false;
  Status error_;
  link::CloseReason reason_ = link::CloseReason::kTlsHandshakeFailed;
  // Set by the verify callback when it refuses the peer itself.
  link::CloseReason verify_reason_ = link::CloseReason::kNone;
  std::string verify_detail_;
  std::vector<uint8_t> pending_app_;  // written before the handshake completed
};

}  // namespace isthmus::tls
