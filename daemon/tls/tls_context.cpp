#include "tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

namespace isthmus::tls {

std::string openssl_errors() {
  std::string out;
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    // "error:0A000086:SSL routines::certificate verify failed" -> keep the reason.
    std::string s(buf);
    size_t colon = s.rfind(':');
    if (colon != std::string::npos && colon + 1 < s.size()) s = s.substr(colon + 1);
    if (!out.empty()) out += "; ";
    out += s;
  }
  return out.empty() ? "unknown TLS error" : out;
}

std::optional<Sha256> parse_pin(const std::string& hex) {
  Sha256 out{};
  size_t n = 0;
  int half = -1;
  for (char c : hex) {
    if (c == ':') continue;
    int v = 0;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else return std::nullopt;
    if (half < 0) {
      half = v;
    } else {
      if (n >= out.size()) return std::nullopt;
      out[n++] = static_cast<uint8_t>(half << 4 | v);
      half = -1;
    }
  }
  if (n != out.size() || half >= 0) return std::nullopt;
  return out;
}

std::string pin_hex(const Sha256& pin) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (uint8_t b : pin) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

Sha256 spki_sha256(X509* cert) {
  Sha256 out{};
  EVP_PKEY* key = X509_get0_pubkey(cert);
  if (key == nullptr) return out;
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key, &der);
  if (len <= 0) return out;
  unsigned int md_len = 0;
  EVP_Digest(der, static_cast<size_t>(len), out.data(), &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  return out;
}

Result<std::shared_ptr<TlsContext>> TlsContext::create(const Options& opts) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr) return Status(Code::kInternal, "SSL_CTX_new: " + openssl_errors());
  std::shared_ptr<TlsContext> self(new TlsContext(ctx));
  if (opts.test_tls12_only) {
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  } else {
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  }
  // Links are long-lived and never resumed: no session tickets or cache.
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_load_verify_locations(ctx, opts.ca_file.c_str(), nullptr) != 1) {
    return Status(Code::kInvalid, "TLS CA file \"" + opts.ca_file + "\": " + openssl_errors());
  }
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(opts.ca_file.c_str())) {
    SSL_CTX_set_client_CA_list(ctx, names);
  }
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx, opts.cert_file.c_str()) != 1) {
    return Status(Code::kInvalid, "TLS certificate file \"" + opts.cert_file + "\": " + openssl_errors());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, opts.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Status(Code::kInvalid, "TLS key file \"" + opts.key_file + "\": " + openssl_errors());
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return Status(Code::kInvalid, "TLS key \"" + opts.key_file + "\" does not match certificate \"" +
                                      opts.cert_file + "\": " + openssl_errors());
  }
  return self;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

}  // namespace isthmus::tls
