#include "tls/client_session.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls/tls_context.h"

namespace isthmus::tls {

Result<std::unique_ptr<ClientSession>> ClientSession::create(const std::string& host) {
  std::unique_ptr<ClientSession> s(new ClientSession());
  s->ctx_ = SSL_CTX_new(TLS_client_method());
  if (s->ctx_ == nullptr) return Status(Code::kInternal, "TLS: " + openssl_errors());
  SSL_CTX_set_min_proto_version(s->ctx_, TLS1_2_VERSION);
  if (SSL_CTX_set_default_verify_paths(s->ctx_) != 1) {
    return Status(Code::kInvalid, "TLS: cannot load the system trust store: " + openssl_errors());
  }
  SSL_CTX_set_verify(s->ctx_, SSL_VERIFY_PEER, nullptr);
  s->ssl_ = SSL_new(s->ctx_);
  if (s->ssl_ == nullptr) return Status(Code::kInternal, "TLS: " + openssl_errors());
  in6_addr a6;
  in_addr a4;
  const bool is_ip = inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
  X509_VERIFY_PARAM* param = SSL_get0_param(s->ssl_);
  if (is_ip) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
      return Status(Code::kInvalid, "TLS: cannot check IP address " + host);
    }
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(s->ssl_, host.c_str()) != 1 || SSL_ctrl(s->ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                                                      const_cast<char*>(host.c_str())) != 1) {
      return Status(Code::kInvalid, "TLS: cannot check host name " + host);
    }
  }
  s->net_in_ = BIO_new(BIO_s_mem());
  s->net_out_ = BIO_new(BIO_s_mem());
  if (s->net_in_ == nullptr || s->net_out_ == nullptr) {
    BIO_free(s->net_in_);
    BIO_free(s->net_out_);
    s->net_in_ = s->net_out_ = nullptr;
    return Status(Code::kInternal, "TLS: cannot allocate buffers");
  }
  SSL_set_bio(s->ssl_, s->net_in_, s->net_out_);
  SSL_set_connect_state(s->ssl_);
  return s;
}

ClientSession::~ClientSession() {
  if (ssl_ != nullptr) SSL_free(ssl_);  // frees the BIOs
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

void ClientSession::drain(std::string& to_net) {
  char buf[16 * 1024];
  int n;
  while ((n = BIO_read(net_out_, buf, sizeof(buf))) > 0) to_net.append(buf, static_cast<size_t>(n));
}

Status ClientSession::step(std::string& to_net) {
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    done_ = true;
    drain(to_net);
    return Status::ok();
  }
  int err = SSL_get_error(ssl_, rc);
  drain(to_net);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Status::ok();
  long vr = SSL_get_verify_result(ssl_);
  if (vr != X509_V_OK) {
    error_ = Status(Code::kInvalid, std::string("TLS: server certificate: ") + X509_verify_cert_error_string(vr));
  } else {
    error_ = Status(Code::kInvalid, "TLS handshake: " + openssl_errors());
  }
  return error_;
}

Status ClientSession::start(std::string& to_net) {
  if (!error_) return error_;
  return step(to_net);
}

Status ClientSession::read(std::span<const uint8_t> in, std::string& to_app, std::string& to_net) {
  if (!error_) return error_;
  if (!in.empty() && BIO_write(net_in_, in.data(), static_cast<int>(in.size())) != static_cast<int>(in.size())) {
    return error_ = Status(Code::kInternal, "TLS: cannot buffer input");
  }
  if (!done_) {
    Status st = step(to_net);
    if (!st || !done_) return st;
  }
  char buf[16 * 1024];
  for (;;) {
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(ssl_, buf, sizeof(buf), &got) == 1) {
      to_app.append(buf, got);
      continue;
    }
    int err = SSL_get_error(ssl_, 0);
    drain(to_net);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Status::ok();
    if (err == SSL_ERROR_ZERO_RETURN) return error_ = Status(Code::kUnavailable, "TLS: closed by the server");
    return error_ = Status(Code::kInvalid, "TLS: " + openssl_errors());
  }
}

Status ClientSession::write(std::span<const uint8_t> in, std::string& to_net) {
  if (!error_) return error_;
  if (!done_) return Status(Code::kInternal, "TLS: write before the handshake is done");
  size_t off = 0;
  while (off < in.size()) {
    size_t wrote = 0;
    ERR_clear_error();
    if (SSL_write_ex(ssl_, in.data() + off, in.size() - off, &wrote) != 1) {
      drain(to_net);
      return error_ = Status(Code::kInvalid, "TLS write: " + openssl_errors());
    }
    off += wrote;
  }
  drain(to_net);
  return Status::ok();
}

}  // namespace isthmus::tls
