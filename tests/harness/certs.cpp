#include "certs.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace harness {

namespace {

EVP_PKEY* new_key() {
  EVP_PKEY* k = EVP_EC_gen("P-256");
  if (k == nullptr) throw std::runtime_error("EVP_EC_gen failed");
  return k;
}

void write_pem(const std::string& path, auto&& writer) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  int ok = writer(f);
  std::fclose(f);
  if (ok != 1) throw std::runtime_error("PEM write failed: " + path);
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) throw std::runtime_error(std::string("bad extension ") + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

X509* new_cert(const std::string& cn, EVP_PKEY* key, long nb, long na) {
  static long serial = 1;
  X509* c = X509_new();
  X509_set_version(c, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c), serial++ + static_cast<long>(::time(nullptr) & 0xfffff) * 1000);
  X509_gmtime_adj(X509_getm_notBefore(c), nb);
  X509_gmtime_adj(X509_getm_notAfter(c), na);
  X509_set_pubkey(c, key);
  X509_NAME* name = X509_get_subject_name(c);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1,
                             -1, 0);
  return c;
}

}  // namespace

TestCa::TestCa(const std::string& name, const std::string& ca_path) : ca_path_(ca_path) {
  EVP_PKEY* key = new_key();
  X509* cert = new_cert(name, key, -86400, 10L * 365 * 86400);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(cert, cert, NID_subject_key_identifier, "hash");
  if (X509_sign(cert, key, EVP_sha256()) == 0) throw std::runtime_error("CA sign failed");
  write_pem(ca_path_, [&](FILE* f) { return PEM_write_X509(f, cert); });
  key_ = key;
  cert_ = cert;
}

TestCa::~TestCa() {
  X509_free(static_cast<X509*>(cert_));
  EVP_PKEY_free(static_cast<EVP_PKEY*>(key_));
}

CertFiles TestCa::issue(const CertSpec& spec, const std::string& cert_path, const std::string& key_path) const {
  auto* ca_cert = static_cast<X509*>(cert_);
  auto* ca_key = static_cast<EVP_PKEY*>(key_);
  EVP_PKEY* key = new_key();
  X509* cert = new_cert(spec.common_name, key, spec.not_before_s, spec.not_after_s);
  X509_set_issuer_name(cert, X509_get_subject_name(ca_cert));
  add_ext(cert, ca_cert, NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert, ca_cert, NID_key_usage, "critical,digitalSignature");
  add_ext(cert, ca_cert, NID_ext_key_usage, "serverAuth,clientAuth");
  add_ext(cert, ca_cert, NID_authority_key_identifier, "keyid");
  if (!spec.dns.empty() || !spec.ips.empty()) {
    std::string san;
    for (const auto& d : spec.dns) san += (san.empty() ? "DNS:" : ",DNS:") + d;
    for (const auto& ip : spec.ips) san += (san.empty() ? "IP:" : ",IP:") + ip;
    add_ext(cert, ca_cert, NID_subject_alt_name, san.c_str());
  }
  if (X509_sign(cert, ca_key, EVP_sha256()) == 0) throw std::runtime_error("cert sign failed");
  write_pem(cert_path, [&](FILE* f) { return PEM_write_X509(f, cert); });
  write_pem(key_path, [&](FILE* f) { return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr); });
  ::chmod(key_path.c_str(), 0600);
  X509_free(cert);
  EVP_PKEY_free(key);
  return CertFiles{ca_path_, cert_path, key_path};
}

std::string TestCa::spki_sha256_hex(const std::string& cert_path) {
  FILE* f = std::fopen(cert_path.c_str(), "r");
  if (f == nullptr) throw std::runtime_error("cannot read " + cert_path);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (cert == nullptr) throw std::runtime_error("not a certificate: " + cert_path);
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(der, static_cast<size_t>(len), md, &n, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  X509_free(cert);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

namespace {
std::mutex ca_mu;
std::map<std::string, std::unique_ptr<TestCa>> cas;  // per directory

// Call with ca_mu held.
TestCa& ca_for(const std::string& tls_dir) {
  ::mkdir(tls_dir.c_str(), 0700);
  auto& ca = cas[tls_dir];
  if (!ca) ca = std::make_unique<TestCa>("isthmus test CA", tls_dir + "/ca.pem");
  return *ca;
}
}  // namespace

CertFiles region_certs(const std::string& dir, const std::string& region) {
  std::lock_guard<std::mutex> lock(ca_mu);
  const std::string tls_dir = dir + "/tls";
  TestCa& ca = ca_for(tls_dir);
  CertSpec spec;
  spec.common_name = region;
  spec.dns = {region};
  return ca.issue(spec, tls_dir + "/" + region + ".crt", tls_dir + "/" + region + ".key");
}

const TestCa& region_ca(const std::string& dir) {
  std::lock_guard<std::mutex> lock(ca_mu);
  return ca_for(dir + "/tls");
}

}  // namespace harness
