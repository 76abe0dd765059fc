#include "tls/tls_layer.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>
#include <string>

namespace isthmus::tls {

using link::CloseReason;

namespace {
constexpr size_t kReadBuf = 64 * 1024;

// The DNS names of a certificate's subjectAltName, comma-separated (at most
// 8, each cut at 64 characters): said when none of them is a configured
// peer, so that an operator learns who knocked (a region removed from the
// configuration, say). "(...)" when there are none or they cannot be read.
std::string dns_names(X509* cert) {
  int crit = 0;
  std::unique_ptr<GENERAL_NAMES, decltype(&GENERAL_NAMES_free)> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, nullptr)), &GENERAL_NAMES_free);
  if (!names) return crit == -1 ? "(it carries none)" : "(its names cannot be read)";
  std::string out;
  int shown = 0;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    if (n->type != GEN_DNS) continue;
    if (++shown > 8) {
      out += ", ...";
      break;
    }
    const ASN1_IA5STRING* d = n->d.dNSName;
    const int len = ASN1_STRING_length(d);
    std::string name(reinterpret_cast<const char*>(ASN1_STRING_get0_data(d)), static_cast<size_t>(std::min(len, 64)));
    for (char& c : name) {
      if (c < 0x20 || c > 0x7e) c = '?';  // (into a log line and JSON)
    }
    out += (out.empty() ? "" : ", ") + name + (len > 64 ? "..." : "");
  }
  return out.empty() ? "(it carries none)" : "(it names " + out + ")";
}
}  // namespace

TlsLayer::TlsLayer(std::shared_ptr<TlsContext> ctx, Role role, Peer peer)
    : ctx_(std::move(ctx)), role_(role), peer_(std::move(peer)) {
  ssl_ = SSL_new(ctx_->ctx());
  net_in_ = BIO_new(BIO_s_mem());
  net_out_ = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(net_in_, -1);  // empty means "want more", not EOF
  SSL_set_bio(ssl_, net_in_, net_out_);
  SSL_set_app_data(ssl_, this);
  int mode = SSL_VERIFY_PEER;
  if (role_ == Role::kServer) {
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
  SSL_set_verify(ssl_, mode, &TlsLayer::verify_cb);
}

TlsLayer::~TlsLayer() { SSL_free(ssl_); }

int TlsLayer::verify_cb(int preverify_ok, X509_STORE_CTX* store) {
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* self = static_cast<TlsLayer*>(SSL_get_app_data(ssl));
  return self->verify(preverify_ok, store);
}

int TlsLayer::verify(int preverify_ok, X509_STORE_CTX* store) {
  if (!preverify_ok) return 0;  // chain error: SSL_get_verify_result names it
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  for (const std::string& name : peer_.names) {
    if (X509_check_host(cert, name.data(), name.size(),
                        X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_WILDCARDS, nullptr) == 1) {
      peer_name_ = name;
      break;
    }
  }
  if (peer_name_.empty()) {
    verify_reason_ = CloseReason::kNameMismatch;
    std::string want;
    for (const auto& n : peer_.names) want += (want.empty() ? "" : ", ") + n;
    verify_detail_ = "peer certificate carries no DNS name among: " + want + " " + dns_names(cert);
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  auto pin = peer_.pins.find(peer_name_);
  if (pin != peer_.pins.end()) {
    Sha256 got = spki_sha256(cert);
    if (got != pin->second) {
      verify_reason_ = CloseReason::kPinMismatch;
      verify_detail_ = "public key of " + peer_name_ + " has SHA-256 " + pin_hex(got) + ", pinned " +
                       pin_hex(pin->second);
      X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
      return 0;
    }
  }
  return 1;
}

void TlsLayer::drain(std::vector<uint8_t>& to_net) {
  size_t n = BIO_ctrl_pending(net_out_);
  if (n == 0) return;
  size_t at = to_net.size();
  to_net.resize(at + n);
  int got = BIO_read(net_out_, to_net.data() + at, static_cast<int>(n));
  to_net.resize(at + (got > 0 ? static_cast<size_t>(got) : 0));
}

Status TlsLayer::fail(CloseReason reason, std::string detail) {
  reason_ = reason;
  error_ = Status(Code::kInvalid, std::move(detail));
  return error_;
}

Status TlsLayer::start(std::vector<uint8_t>& to_net) {
  if (!error_) return error_;
  if (done_) return Status::ok();
  return step_handshake(to_net);
}

Status TlsLayer::step_handshake(std::vector<uint8_t>& to_net) {
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    done_ = true;
    drain(to_net);
    if (!pending_app_.empty()) {
      std::vector<uint8_t> app = std::move(pending_app_);
      pending_app_.clear();
      return seal(app, to_net);
    }
    return Status::ok();
  }
  int err = SSL_get_error(ssl_, rc);
  drain(to_net);  // handshake messages, or the alert that ends it
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Status::ok();
  if (verify_reason_ != CloseReason::kNone) {
    ERR_clear_error();
    return fail(verify_reason_, verify_detail_);
  }
  long vr = SSL_get_verify_result(ssl_);
  std::string errs = openssl_errors();
  if (vr != X509_V_OK) {
    return fail(CloseReason::kCertRejected,
                std::string("peer certificate: ") + X509_verify_cert_error_string(vr));
  }
  // The peer may have refused *our* certificate: its alert says why.
  return fail(CloseReason::kTlsHandshakeFailed, errs);
}

Status TlsLayer::seal(std::span<const uint8_t> in, std::vector<uint8_t>& to_net) {
  size_t off = 0;
  while (off < in.size()) {
    size_t wrote = 0;
    ERR_clear_error();
    if (SSL_write_ex(ssl_, in.data() + off, in.size() - off, &wrote) != 1) {
      drain(to_net);
      return fail(CloseReason::kIoError, "TLS write: " + openssl_errors());
    }
    off += wrote;
    drain(to_net);
  }
  return Status::ok();
}

Status TlsLayer::write(std::span<const uint8_t> in, bool, std::vector<uint8_t>& to_net) {
  if (!error_) return error_;
  if (!done_) {
    pending_app_.insert(pending_app_.end(), in.begin(), in.end());
    return step_handshake(to_net);
  }
  return seal(in, to_net);
}

Status TlsLayer::read(std::span<const uint8_t> in, std::vector<uint8_t>& to_app,
                      std::vector<uint8_t>& to_net) {
  if (!error_) return error_;
  if (!in.empty() && BIO_write(net_in_, in.data(), static_cast<int>(in.size())) != static_cast<int>(in.size())) {
    return fail(CloseReason::kIoError, "TLS: cannot buffer input");
  }
  if (!done_) {
    Status st = step_handshake(to_net);
    if (!st || !done_) return st;
  }
  uint8_t buf[kReadBuf];
  for (;;) {
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(ssl_, buf, sizeof(buf), &got) == 1) {
      to_app.insert(to_app.end(), buf, buf + got);
      continue;
    }
    int err = SSL_get_error(ssl_, 0);
    drain(to_net);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Status::ok();
    if (err == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      return fail(CloseReason::kPeerClosed, "TLS close_notify");
    }
    // After a TLS 1.3 client finishes, the server may still refuse its
    // certificate: the alert arrives here.
    return fail(CloseReason::kTlsHandshakeFailed, "TLS: " + openssl_errors());
  }
}

}  // namespace isthmus::tls
