#include "operator_auth.h"

#include <openssl/evp.h>

#include <ctime>
#include <stdexcept>

#include "util.h"

namespace harness {

namespace {

void ensure(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("operator auth: ") + what + " failed");
}

std::string b32(const std::vector<uint8_t>& in) {
  static const char* kAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (uint8_t b : in) {
    buf = (buf << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlpha[(buf >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kAlpha[(buf << (5 - bits)) & 31]);
  return out;
}

uint16_t crc16_xmodem(const std::vector<uint8_t>& d) {
  uint16_t crc = 0;
  for (uint8_t b : d) {
    crc ^= static_cast<uint16_t>(b) << 8;
    for (int i = 0; i < 8; ++i) crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
  }
  return crc;
}

std::string b64url(const std::string& in) {
  static const char* kAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (unsigned char c : in) {
    buf = (buf << 8) | c;
    bits += 8;
    while (bits >= 6) {
      out.push_back(kAlpha[(buf >> (bits - 6)) & 63]);
      bits -= 6;
    }
  }
  if (bits > 0) out.push_back(kAlpha[(buf << (6 - bits)) & 63]);
  return out;
}

void append_crc(std::vector<uint8_t>& raw) {
  uint16_t c = crc16_xmodem(raw);
  raw.push_back(static_cast<uint8_t>(c & 0xff));
  raw.push_back(static_cast<uint8_t>(c >> 8));
}

}  // namespace

NKey NKey::make(uint8_t prefix) {
  NKey k;
  k.prefix = prefix;
  EVP_PKEY* key = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  ensure(ctx != nullptr, "EVP_PKEY_CTX_new_id");
  ensure(EVP_PKEY_keygen_init(ctx) == 1, "EVP_PKEY_keygen_init");
  ensure(EVP_PKEY_keygen(ctx, &key) == 1, "EVP_PKEY_keygen");
  EVP_PKEY_CTX_free(ctx);
  size_t n = 32;
  k.seed.resize(32);
  k.pub.resize(32);
  ensure(EVP_PKEY_get_raw_private_key(key, k.seed.data(), &n) == 1, "EVP_PKEY_get_raw_private_key");
  n = 32;
  ensure(EVP_PKEY_get_raw_public_key(key, k.pub.data(), &n) == 1, "EVP_PKEY_get_raw_public_key");
  EVP_PKEY_free(key);
  return k;
}

std::string NKey::public_key() const {
  std::vector<uint8_t> raw{prefix};
  raw.insert(raw.end(), pub.begin(), pub.end());
  append_crc(raw);
  return b32(raw);
}

std::string NKey::encoded_seed() const {
  const uint8_t kSeed = 18 << 3;
  std::vector<uint8_t> raw{static_cast<uint8_t>(kSeed | (prefix >> 5)), static_cast<uint8_t>((prefix & 31) << 3)};
  raw.insert(raw.end(), seed.begin(), seed.end());
  append_crc(raw);
  return b32(raw);
}

std::string NKey::sign(const std::string& data) const {
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size());
  ensure(key != nullptr, "EVP_PKEY_new_raw_private_key");
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  std::string sig(64, '\0');
  size_t n = sig.size();
  bool ok = md != nullptr && EVP_DigestSignInit(md, nullptr, nullptr, nullptr, key) == 1 &&
            EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &n,
                           reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(key);
  ensure(ok, "Ed25519 signature");
  return sig;
}

std::string make_jwt(const NKey& issuer, const NKey& subject, const std::string& name, nlohmann::json nats) {
  static int jti = 0;
  nlohmann::json claims = {{"jti", "ISTHMUSTEST" + std::to_string(++jti)},
                           {"iat", static_cast<int64_t>(::time(nullptr))},
                           {"iss", issuer.public_key()},
                           {"name", name},
                           {"sub", subject.public_key()},
                           {"nats", std::move(nats)}};
  std::string head = b64url(R"({"typ":"JWT","alg":"ed25519-nkey"})") + "." + b64url(claims.dump());
  return head + "." + b64url(issuer.sign(head));
}

std::string creds_text(const std::string& user_jwt, const NKey& seed_of) {
  return "-----BEGIN NATS USER JWT-----\n" + user_jwt + "\n------END NATS USER JWT------\n\n" +
         "-----BEGIN USER NKEY SEED-----\n" + seed_of.encoded_seed() + "\n------END USER NKEY SEED------\n";
}

OperatorAuth::OperatorAuth(bool jetstream)
    : op_(NKey::make(NKey::kOperator)),
      sys_(NKey::make(NKey::kAccount)),
      acc_(NKey::make(NKey::kAccount)),
      user_(NKey::make(NKey::kUser)),
      other_(NKey::make(NKey::kUser)) {
  op_jwt_ = make_jwt(op_, op_, "op", {{"type", "operator"}, {"system_account", sys_.public_key()}, {"version", 2}});
  sys_jwt_ = make_jwt(op_, sys_, "SYS", {{"type", "account"}, {"version", 2}});
  nlohmann::json limits = {{"subs", -1}, {"data", -1}, {"payload", -1}, {"imports", -1},
                           {"exports", -1}, {"wildcards", true}, {"conn", -1}, {"leaf", -1}};
  if (jetstream) {
    // JetStream for the account, unlimited (nats-server: "mem_storage" and
    // "disk_storage" -1 enable it).
    limits["mem_storage"] = -1;
    limits["disk_storage"] = -1;
    limits["streams"] = -1;
    limits["consumer"] = -1;
  }
  acc_jwt_ = make_jwt(op_, acc_, "acc", {{"limits", limits}, {"type", "account"}, {"version", 2}});
  const nlohmann::json user_claims = {{"pub", nlohmann::json::object()}, {"sub", nlohmann::json::object()},
                                      {"subs", -1}, {"data", -1}, {"payload", -1}, {"type", "user"}, {"version", 2}};
  user_jwt_ = make_jwt(acc_, user_, "u", user_claims);
}

std::string OperatorAuth::server_config() const {
  return "operator: " + op_jwt_ + "\nsystem_account: " + sys_.public_key() + "\nresolver: MEMORY\n" +
         "resolver_preload: {\n  " + sys_.public_key() + ": " + sys_jwt_ + "\n  " + acc_.public_key() + ": " +
         acc_jwt_ + "\n}\n";
}

void OperatorAuth::write_user_creds(const std::string& path) const { write_file(path, creds_text(user_jwt_, user_)); }

void OperatorAuth::write_wrong_seed_creds(const std::string& path) const {
  write_file(path, creds_text(user_jwt_, other_));
}

}  // namespace harness
