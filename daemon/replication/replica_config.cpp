#include "replication/replica_config.h"

#include <algorithm>
#include <set>

namespace isthmus::replication {

using Json = nlohmann::json;

namespace {

// The replica's own limits: it never expires, discards or refuses anything
// by itself; it removes messages only when the leader did (follower.cpp).
const Json& neutral_limits() {
  static const Json j = {{"max_msgs", -1},          {"max_bytes", -1},
                         {"max_age", 0},            {"max_msgs_per_subject", -1},
                         {"max_msg_size", -1},      {"discard", "old"},
                         {"discard_new_per_subject", false}};
  return j;
}

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
  std::string retention = leader.value("retention", std::string("limits"));
  if (retention != "limits" && retention != "interest" && retention != "workqueue") {
    return Status(Code::kInvalid, "leader stream configuration: unknown retention " + retention);
  }
  r["retention"] = retention;
  for (const auto& [k, v] : neutral_limits().items()) r[k] = v;
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

bool needs_retention_anchor(const Json& replica_config) {
  if (!replica_config.is_object()) return false;
  auto it = replica_config.find("retention");
  return it != replica_config.end() && it->is_string() && it->get<std::string>() != "limits";
}

Json retention_anchor_config() {
  // A pull consumer nobody pulls from: it never acknowledges, so under
  // interest (or work-queue) retention every message stays until removed by
  // a purge or a delete.
  return {{"durable_name", kRetentionAnchor},
          {"description", "Isthmus retention anchor: keeps the replica's messages until the leader "
                          "removes them; never consumed"},
          {"deliver_policy", "all"},
          {"ack_policy", "explicit"},
          {"replay_policy", "instant"},
          {"max_ack_pending", -1},
          {"num_replicas", 0}};
}

namespace {
constexpr const char* kDurablePrefix = "isthmus_";
}  // namespace

std::string durable_name(const std::string& region, uint64_t n) {
  return std::string(kDurablePrefix) + region + "_" + std::to_string(n);
}

std::string durable_region(const std::string& name) {
  const size_t plen = std::char_traits<char>::length(kDurablePrefix);
  if (name.rfind(kDurablePrefix, 0) != 0) return "";
  size_t us = name.rfind('_');
  if (us == std::string::npos || us < plen + 1 || us + 1 >= name.size()) return "";
  for (size_t i = us + 1; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return "";
  }
  return name.substr(plen, us - plen);
}

namespace {

std::set<std::string> subjects(const Json& j) {
  std::set<std::string> s;
  if (j.is_object() && j.contains("subjects") && j["subjects"].is_array()) {
    for (const auto& x : j["subjects"]) {
      if (x.is_string()) s.insert(x.get<std::string>());
    }
  }
  return s;
}

std::string join(const std::set<std::string>& s) {
  std::string out;
  for (const auto& x : s) out += (out.empty() ? "" : ",") + x;
  return out;
}

std::string conflict(const Json& existing, const Json& wanted) {
  auto es = subjects(existing), ws = subjects(wanted);
  if (es != ws) return "subjects differ: replica has [" + join(es) + "], leader has [" + join(ws) + "]";
  std::string est = existing.value("storage", std::string("file"));
  std::string wst = wanted.value("storage", std::string("file"));
  if (est != wst) return "storage differs: replica " + est + ", leader " + wst;
  std::string er = existing.value("retention", std::string("limits"));
  std::string wr = wanted.value("retention", std::string("limits"));
  if (er != wr) {
    return "retention differs: replica " + er + ", leader " + wr +
           " (nats-server cannot change a stream's retention; delete the replica to let Isthmus recreate it)";
  }
  if (existing.value("deny_delete", false)) return "the replica denies deletes (deny_delete: true)";
  if (existing.value("deny_purge", false)) return "the replica denies purges (deny_purge: true)";
  if (existing.contains("mirror") && !existing["mirror"].is_null()) return "the replica is a native mirror";
  return "";
}

std::string show(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

}  // namespace

std::string replica_conflict(const Json& existing, const Json& wanted) {
  if (!existing.is_object()) return "the replica's configuration is not an object";
  try {
    return conflict(existing, wanted);
  } catch (const Json::exception& e) {
    return std::string("the replica's configuration is unreadable: ") + e.what();
  }
}

bool is_isthmus_replica(const Json& existing, const std::string& stream) {
  if (!existing.is_object() || !existing.contains("description") || !existing["description"].is_string()) {
    return false;
  }
  const std::string base = "Isthmus replica of " + stream;
  const std::string& d = existing["description"].get_ref<const std::string&>();
  // The base alone, or followed by a marker ("; isthmus:...").
  return d.rfind(base, 0) == 0 && (d.size() == base.size() || d[base.size()] == ';');
}

std::string replica_subject_change(const Json& existing, const Json& wanted) {
  auto es = subjects(existing), ws = subjects(wanted);
  if (es == ws) return "";
  return "[" + join(es) + "] -> [" + join(ws) + "]";
}

std::vector<std::string> replica_limit_changes(const Json& existing, const Json& wanted) {
  std::vector<std::string> out;
  if (!existing.is_object()) return out;
  for (const auto& [k, neutral] : neutral_limits().items()) {
    const Json& want = wanted.is_object() && wanted.contains(k) ? wanted[k] : neutral;
    // nats-server omits false booleans; an absent setting is its default.
    Json have = existing.contains(k) ? existing[k] : (k == "discard" ? Json("old") : neutral);
    if (have != want) out.push_back(k + ": " + show(have) + " -> " + show(want));
  }
  return out;
}

Json with_neutral_limits(const Json& existing, const Json& wanted) {
  Json out = existing;
  for (const auto& [k, neutral] : neutral_limits().items()) {
    out[k] = wanted.is_object() && wanted.contains(k) ? wanted[k] : neutral;
  }
  return out;
}

}  // namespace isthmus::replication
