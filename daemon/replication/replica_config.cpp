#include "replication/replica_config.h"

#include <algorithm>
#include <set>

namespace isthmus::replication {

using Json = nlohmann::json;

namespace {

Result<Json> derive(const Json& leader, int replicas) {
  if (!leader.is_object() || !leader.contains("name") || !leader.contains("subjects")) {
    return Status(Code::kInvalid, "leader stream configuration lacks name or subjects");
  }
  if (leader.contains("mirror") && !leader["mirror"].is_null()) {
    return Status(Code::kUnsupported, "the leader stream is itself a mirror");
  }
  Json r;
  r["name"] = leader["name"];
  r["subjects"] = leader["subjects"];
  r["storage"] = leader.value("storage", std::string("file"));
  r["retention"] = "limits";
  r["discard"] = "old";
  r["max_msgs"] = leader.value("max_msgs", int64_t{-1});
  r["max_bytes"] = leader.value("max_bytes", int64_t{-1});
  r["max_age"] = leader.value("max_age", int64_t{0});
  r["max_msgs_per_subject"] = leader.value("max_msgs_per_subject", int64_t{-1});
  r["max_msg_size"] = leader.value("max_msg_size", int32_t{-1});
  r["max_consumers"] = -1;
  r["num_replicas"] = replicas;
  r["duplicate_window"] = leader.value("duplicate_window", int64_t{120000000000});
  r["allow_rollup_hdrs"] = false;
  r["deny_delete"] = false;
  r["deny_purge"] = false;
  r["description"] = "Isthmus replica of " + leader["name"].get<std::string>();
  return r;
}

}  // namespace

// The leader's configuration arrives from a peer: a field of an unexpected
// type (e.g. "name": null) is refused, never thrown into the loop.
Result<Json> derive_replica_config(const Json& leader, int replicas) {
  try {
    return derive(leader, replicas);
  } catch (const Json::exception& e) {
    return Status(Code::kInvalid, std::string("leader stream configuration: ") + e.what());
  }
}

namespace {

std::string conflict(const Json& existing, const Json& wanted) {
  auto subjects = [](const Json& j) {
    std::set<std::string> s;
    if (j.contains("subjects") && j["subjects"].is_array()) {
      for (const auto& x : j["subjects"]) {
        if (x.is_string()) s.insert(x.get<std::string>());
      }
    }
    return s;
  };
  auto join = [](const std::set<std::string>& s) {
    std::string out;
    for (const auto& x : s) out += (out.empty() ? "" : ",") + x;
    return out;
  };
  auto es = subjects(existing), ws = subjects(wanted);
  if (es != ws) return "subjects differ: replica has [" + join(es) + "], leader has [" + join(ws) + "]";
  std::string est = existing.value("storage", std::string("file"));
  std::string wst = wanted.value("storage", std::string("file"));
  if (est != wst) return "storage differs: replica " + est + ", leader " + wst;
  std::string er = existing.value("retention", std::string("limits"));
  if (er != "limits") return "retention differs: replica " + er + ", a replica needs limits";
  if (existing.value("deny_delete", false)) return "the replica denies deletes";
  if (existing.contains("mirror") && !existing["mirror"].is_null()) return "the replica is a native mirror";
  return "";
}

}  // namespace

std::string replica_conflict(const Json& existing, const Json& wanted) {
  if (!existing.is_object()) return "the replica's configuration is not an object";
  try {
    return conflict(existing, wanted);
  } catch (const Json::exception& e) {
    return std::string("the replica's configuration is unreadable: ") + e.what();
  }
}

}  // namespace isthmus::replication
