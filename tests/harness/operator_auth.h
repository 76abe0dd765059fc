// Decentralized NATS auth for tests (nats-server's operator mode): an
// operator, an account and users, with their nkeys and JWTs made here with
// OpenSSL's Ed25519, and .creds files for the clients.
//
// nkeys: a public key is base32(prefix | 32-byte ed25519 key | crc16 LE), a
// seed base32(seed prefix | type | 32-byte seed | crc16 LE); JWTs are
// base64url(header).base64url(claims).base64url(ed25519 signature by the
// issuer's key). The server (operator mode, memory resolver) checks the user
// JWT's chain and the nonce signature made with the user's seed.
//
// Errors throw std::runtime_error (harness convention). Thread-safety: an
// OperatorAuth is immutable after construction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace harness {

struct NKey {
  std::vector<uint8_t> seed, pub;  // raw 32 bytes each
  uint8_t prefix = 0;              // kOperator, kAccount or kUser

  static constexpr uint8_t kOperator = 14 << 3, kAccount = 0, kUser = 20 << 3;
  static NKey make(uint8_t prefix);
  std::string public_key() const;
  std::string encoded_seed() const;
  std::string sign(const std::string& data) const;  // raw 64-byte Ed25519 signature
};

// A JWT with `nats` as its "nats" claims, for `subject`, signed by `issuer`.
std::string make_jwt(const NKey& issuer, const NKey& subject, const std::string& name, nlohmann::json nats);
// The text of a .creds file: the user JWT and the seed of `seed_of`.
std::string creds_text(const std::string& user_jwt, const NKey& seed_of);

// One operator, its system account, and one account with every limit open;
// with jetstream, that account may use JetStream without limits (a server
// with JetStream in operator mode needs the system account).
class OperatorAuth {
 public:
  explicit OperatorAuth(bool jetstream = false);

  // nats-server configuration lines: operator JWT, system account, memory
  // resolver with both accounts preloaded.
  std::string server_config() const;
  // A .creds file for a user of the account with every permission.
  void write_user_creds(const std::string& path) const;
  // A .creds file with that user's JWT and another key's seed: the server
  // refuses it (Authorization Violation).
  void write_wrong_seed_creds(const std::string& path) const;

 private:
  NKey op_, sys_, acc_, user_, other_;
  std::string op_jwt_, sys_jwt_, acc_jwt_, user_jwt_;
};

}  // namespace harness
