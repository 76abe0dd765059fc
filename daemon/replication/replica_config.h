// How a replica's JetStream configuration is derived from its leader's.
// Pure code; docs/architecture.md ("Replica configuration", "Replica
// retention") is the contract.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/status.h"

namespace isthmus::replication {

// Name of the durable consumer Isthmus keeps on an interest or work-queue
// replica and never acknowledges: it holds every message until the
// follower removes it in step with the leader (purge or delete).
inline constexpr const char* kRetentionAnchor = "isthmus_retention_anchor";

// The configuration Isthmus creates a replica with: the leader's subjects,
// storage and retention; neutral limits of its own (unlimited max_msgs,
// max_bytes, max_age, max_msgs_per_subject, max_msg_size; discard old), since
// the replica removes messages only in step with the leader; `replicas`
// in-cluster copies (a per-region setting).
Result<nlohmann::json> derive_replica_config(const nlohmann::json& leader_config, int replicas);

// True when a replica with this retention needs the retention anchor
// (anything but "limits").
bool needs_retention_anchor(const nlohmann::json& replica_config);

// The JetStream consumer configuration of the retention anchor.
nlohmann::json retention_anchor_config();

// The durable consumer through which a leader's interest stream is read for
// one follower region: "isthmus_<region>_<n>" (n: decimal, distinct per
// durable). durable_region() returns the region of such a name, or "" for
// any other name (including kRetentionAnchor).
std::string durable_name(const std::string& region, uint64_t n);
std::string durable_region(const std::string& consumer_name);

// Empty when an existing replica's configuration is compatible with what is
// wanted; otherwise names the first difference (subjects, storage,
// retention, denied deletes/purges, native mirror) with both values.
std::string replica_conflict(const nlohmann::json& existing, const nlohmann::json& wanted);

// True when `existing` is a replica Isthmus created for `stream` (its
// description begins "Isthmus replica of <stream>").
bool is_isthmus_replica(const nlohmann::json& existing, const std::string& stream);

// The leader's subjects change (a stream update adding or removing one);
// a replica Isthmus created follows them. "" when an existing replica's
// subjects are the wanted ones; otherwise "[a,b] -> [a,b,c]".
std::string replica_subject_change(const nlohmann::json& existing, const nlohmann::json& wanted);

// The limit settings (max_msgs, max_bytes, max_age, max_msgs_per_subject,
// max_msg_size, discard, discard_new_per_subject) in which a compatible
// existing replica differs from the wanted neutral ones, each as
// "key: existing -> wanted". Empty: nothing to update.
std::vector<std::string> replica_limit_changes(const nlohmann::json& existing, const nlohmann::json& wanted);

// The existing configuration with the wanted neutral limits put in (for a
// $JS.API.STREAM.UPDATE); everything else is kept as it is.
nlohmann::json with_neutral_limits(const nlohmann::json& existing, const nlohmann::json& wanted);

}  // namespace isthmus::replication
