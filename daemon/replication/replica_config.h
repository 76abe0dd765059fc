// How a replica's JetStream configuration is derived from its leader's.
// Pure code; docs/architecture.md ("Replica configuration") is the contract.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "util/status.h"

namespace isthmus::replication {

// The configuration Isthmus creates a replica with: the leader's subjects,
// storage and size limits; limits retention with discard old (a replica must
// never refuse or drop what the leader holds because of its own retention);
// `replicas` in-cluster copies (a per-region setting).
Result<nlohmann::json> derive_replica_config(const nlohmann::json& leader_config, int replicas);

// Empty when an existing replica's configuration is compatible with what is
// wanted; otherwise names the first difference (subjects, storage, retention).
std::string replica_conflict(const nlohmann::json& existing, const nlohmann::json& wanted);

}  // namespace isthmus::replication
