// Test PKI, made with the OpenSSL C API (no openssl CLI): a CA, and
// certificates signed by it with chosen DNS and IP subject alternative names
// and validity, written as PEM files. Used by the integration harness (every
// generated daemon config has [link.tls]; nats-servers that require TLS), by
// the TLS unit tests and the NATS client tests.
#pragma once

#include <string>
#include <vector>

namespace harness {

struct CertFiles {
  std::string ca;    // PEM of the CA that signed cert
  std::string cert;  // PEM certificate
  std::string key;   // PEM private key
};

struct CertSpec {
  std::string common_name;
  std::vector<std::string> dns;    // DNS subject alternative names
  std::vector<std::string> ips;    // IP address subject alternative names
  long not_before_s = -3600;       // relative to now (X509_gmtime_adj)
  long not_after_s = 30L * 86400;  // relative to now
};

class TestCa {
 public:
  // A fresh self-signed CA (EC P-256 key). Writes its PEM to `ca_path`.
  TestCa(const std::string& name, const std::string& ca_path);
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::string& ca_path() const { return ca_path_; }
  // Issues a certificate and writes it and its key; returns the three paths.
  CertFiles issue(const CertSpec& spec, const std::string& cert_path, const std::string& key_path) const;
  // SHA-256 of the SubjectPublicKeyInfo of a PEM certificate, in hex.
  static std::string spki_sha256_hex(const std::string& cert_path);

 private:
  std::string ca_path_;
  void* key_ = nullptr;   // EVP_PKEY*
  void* cert_ = nullptr;  // X509*
};

// dir/tls/ca.pem (created on first use per directory) and
// dir/tls/<region>.crt/.key with DNS SAN = region.
CertFiles region_certs(const std::string& dir, const std::string& region);

// The CA region_certs() uses for `dir` (created on first use), to issue
// further certificates from the same CA (expired, other names, ...).
const TestCa& region_ca(const std::string& dir);

}  // namespace harness
