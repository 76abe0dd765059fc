// Unit tests for daemon/replication/replica_config.{h,cpp}.
#include <catch2/catch.hpp>

#include <string>

#include "replication/replica_config.h"

using namespace isthmus;
using namespace isthmus::replication;
using Json = nlohmann::json;

namespace {

// A leader configuration as nats-server reports it in STREAM.INFO.
Json leader_config() {
  return Json::parse(R"({
    "name": "COVENANT_USERS",
    "subjects": ["covenant.users.>", "covenant.user-events.*"],
    "retention": "limits",
    "max_consumers": -1,
    "max_msgs": 1000000,
    "max_bytes": 1073741824,
    "max_age": 604800000000000,
    "max_msgs_per_subject": 10,
    "max_msg_size": 1048576,
    "discard": "old",
    "storage": "memory",
    "num_replicas": 3,
    "duplicate_window": 60000000000,
    "sealed": false,
    "deny_delete": true,
    "deny_purge": true,
    "allow_rollup_hdrs": true,
    "allow_direct": false,
    "mirror_direct": false
  })");
}

}  // namespace

TEST_CASE("derive_replica_config copies name, subjects, storage and retention; limits are neutral",
          "[replica_config]") {
  auto r = derive_replica_config(leader_config(), 1);
  REQUIRE(r.is_ok());
  const Json& c = *r;
  CHECK(c["name"] == "COVENANT_USERS");
  CHECK(c["subjects"] == Json::array({"covenant.users.>", "covenant.user-events.*"}));
  CHECK(c["storage"] == "memory");
  CHECK(c["retention"] == "limits");
  // The replica removes messages only in step with the leader.
  CHECK(c["max_msgs"] == -1);
  CHECK(c["max_bytes"] == -1);
  CHECK(c["max_age"] == 0);
  CHECK(c["max_msgs_per_subject"] == -1);
  CHECK(c["max_msg_size"] == -1);
  CHECK(c["discard"] == "old");
  CHECK(c["discard_new_per_subject"] == false);
  CHECK(c["duplicate_window"] == 60000000000);
  CHECK(c["num_replicas"] == 1);
  CHECK(c["allow_rollup_hdrs"] == false);
  CHECK(c["deny_delete"] == false);
  CHECK(c["deny_purge"] == false);
  CHECK(c["max_consumers"] == -1);
  CHECK_FALSE(c.contains("mirror"));
  CHECK_FALSE(c.contains("sources"));
  CHECK(c["description"].get<std::string>().find("COVENANT_USERS") != std::string::npos);
  CHECK_FALSE(needs_retention_anchor(c));
}

TEST_CASE("num_replicas comes from the argument, not the leader", "[replica_config]") {
  for (int n : {1, 3, 5}) {
    auto r = derive_replica_config(leader_config(), n);
    REQUIRE(r.is_ok());
    CHECK((*r)["num_replicas"] == n);
  }
}

TEST_CASE("the leader's retention, discard old and neutral limits even for a discard-new leader",
          "[replica_config]") {
  for (const char* retention : {"interest", "workqueue", "limits"}) {
    Json l = leader_config();
    l["retention"] = retention;
    l["discard"] = "new";
    l["discard_new_per_subject"] = true;
    auto r = derive_replica_config(l, 3);
    REQUIRE(r.is_ok());
    INFO(retention);
    CHECK((*r)["retention"] == retention);
    CHECK((*r)["discard"] == "old");
    CHECK((*r).value("discard_new_per_subject", true) == false);
    CHECK((*r)["max_msgs"] == -1);
    CHECK(needs_retention_anchor(*r) == (std::string(retention) != "limits"));
  }
  Json odd = leader_config();
  odd["retention"] = "forever";
  CHECK(derive_replica_config(odd, 1).status().code() == Code::kInvalid);
}

TEST_CASE("the retention anchor is a durable pull consumer that never acknowledges", "[replica_config]") {
  Json a = retention_anchor_config();
  CHECK(a["durable_name"] == kRetentionAnchor);
  CHECK(std::string(kRetentionAnchor).rfind("isthmus_", 0) == 0);
  CHECK(a["ack_policy"] == "explicit");
  CHECK(a["deliver_policy"] == "all");
  CHECK_FALSE(a.contains("deliver_subject"));
  CHECK_FALSE(a.contains("filter_subject"));
}

TEST_CASE("defaults when the leader omits optional settings", "[replica_config]") {
  Json l = {{"name", "ALERTS_INCIDENTS"}, {"subjects", {"alerts.>"}}};
  auto r = derive_replica_config(l, 1);
  REQUIRE(r.is_ok());
  CHECK((*r)["storage"] == "file");
  CHECK((*r)["retention"] == "limits");
  CHECK((*r)["max_msgs"] == -1);
  CHECK((*r)["max_bytes"] == -1);
  CHECK((*r)["max_age"] == 0);
  CHECK((*r)["max_msgs_per_subject"] == -1);
  CHECK((*r)["max_msg_size"] == -1);
  CHECK((*r)["duplicate_window"] == 120000000000);
}

TEST_CASE("a leader that is itself a mirror is refused", "[replica_config]") {
  Json l = leader_config();
  l["mirror"] = {{"name", "UPSTREAM"}};
  auto r = derive_replica_config(l, 1);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kUnsupported);
  CHECK(r.status().message().find("mirror") != std::string::npos);

  Json n = leader_config();
  n["mirror"] = nullptr;  // explicitly none
  CHECK(derive_replica_config(n, 1).is_ok());
}

TEST_CASE("a leader configuration without name or subjects is refused", "[replica_config]") {
  Json no_name = leader_config();
  no_name.erase("name");
  CHECK(derive_replica_config(no_name, 1).status().code() == Code::kInvalid);
  Json no_subjects = leader_config();
  no_subjects.erase("subjects");
  CHECK(derive_replica_config(no_subjects, 1).status().code() == Code::kInvalid);
  CHECK(derive_replica_config(Json::array(), 1).status().code() == Code::kInvalid);
  CHECK(derive_replica_config(Json(), 1).status().code() == Code::kInvalid);
}

TEST_CASE("a derived replica is compatible with what is wanted", "[replica_config]") {
  auto wanted = derive_replica_config(leader_config(), 1);
  REQUIRE(wanted.is_ok());
  CHECK(replica_conflict(*wanted, *wanted).empty());
  // Subject order and unrelated settings do not matter.
  Json existing = *wanted;
  existing["subjects"] = Json::array({"covenant.user-events.*", "covenant.users.>"});
  existing["num_replicas"] = 3;
  CHECK(replica_conflict(existing, *wanted).empty());
  // Omitted storage and retention mean file and limits.
  Json minimal = {{"name", "COVENANT_USERS"}, {"subjects", (*wanted)["subjects"]}};
  Json wanted_file = *wanted;
  wanted_file["storage"] = "file";
  CHECK(replica_conflict(minimal, wanted_file).empty());
}

TEST_CASE("replica_conflict names the first difference", "[replica_config]") {
  auto w = derive_replica_config(leader_config(), 1);
  REQUIRE(w.is_ok());
  const Json& wanted = *w;

  SECTION("subjects") {
    Json e = wanted;
    e["subjects"] = Json::array({"covenant.users.>"});
    std::string c = replica_conflict(e, wanted);
    CHECK(c.find("subjects") != std::string::npos);
    CHECK(c.find("covenant.user-events.*") != std::string::npos);
    e.erase("subjects");
    CHECK(replica_conflict(e, wanted).find("subjects") != std::string::npos);
  }
  SECTION("storage") {
    Json e = wanted;
    e["storage"] = "file";
    std::string c = replica_conflict(e, wanted);
    CHECK(c.find("storage") != std::string::npos);
    CHECK(c.find("file") != std::string::npos);
    CHECK(c.find("memory") != std::string::npos);
  }
  SECTION("retention") {
    for (const char* ret : {"interest", "workqueue"}) {
      Json e = wanted;
      e["retention"] = ret;
      std::string c = replica_conflict(e, wanted);
      CHECK(c.rfind("retention", 0) == 0);
      CHECK(c.find(std::string("replica ") + ret) != std::string::npos);
      CHECK(c.find("leader limits") != std::string::npos);
    }
    // An interest leader wants an interest replica: a limits replica conflicts.
    Json il = leader_config();
    il["retention"] = "interest";
    auto iw = derive_replica_config(il, 1);
    REQUIRE(iw.is_ok());
    Json e = *iw;
    e["retention"] = "limits";
    std::string c = replica_conflict(e, *iw);
    CHECK(c.find("replica limits, leader interest") != std::string::npos);
    CHECK(replica_conflict(*iw, *iw).empty());
  }
  SECTION("deny_purge") {
    Json e = wanted;
    e["deny_purge"] = true;
    CHECK(replica_conflict(e, wanted).find("denies purges") != std::string::npos);
  }
  SECTION("deny_delete") {
    Json e = wanted;
    e["deny_delete"] = true;
    CHECK(replica_conflict(e, wanted).find("denies deletes") != std::string::npos);
  }
  SECTION("native mirror") {
    Json e = wanted;
    e["mirror"] = {{"name", "COVENANT_USERS"}, {"external", {{"api", "$JS.iad.API"}}}};
    CHECK(replica_conflict(e, wanted).find("mirror") != std::string::npos);
    e["mirror"] = nullptr;
    CHECK(replica_conflict(e, wanted).empty());
  }
  SECTION("subjects are reported before storage") {
    Json e = wanted;
    e["subjects"] = Json::array({"other.>"});
    e["storage"] = "file";
    CHECK(replica_conflict(e, wanted).rfind("subjects", 0) == 0);
  }
}

TEST_CASE("a leader configuration with fields of the wrong type is refused, not thrown", "[replica_config]") {
  // config_json arrives from a peer in STREAM_INFO: it must never throw into the loop.
  auto with = [](const char* key, Json v) {
    Json l = leader_config();
    l[key] = std::move(v);
    return l;
  };
  for (const Json& l : {with("name", nullptr), with("name", 5), with("storage", 1), with("retention", 2),
                        with("retention", nullptr), with("duplicate_window", Json::object())}) {
    INFO(l.dump());
    Result<Json> r(Status(Code::kInternal, "not run"));
    REQUIRE_NOTHROW(r = derive_replica_config(l, 1));
    CHECK(r.status().code() == Code::kInvalid);
  }
  // The leader's limits are not read at all: the replica's are neutral.
  for (const Json& l : {with("max_msgs", "many"), with("max_bytes", nullptr), with("max_age", Json::array()),
                        with("max_msg_size", "1MB")}) {
    INFO(l.dump());
    auto r = derive_replica_config(l, 1);
    REQUIRE(r.is_ok());
    CHECK((*r)["max_msgs"] == -1);
  }
}

TEST_CASE("replica_conflict never throws on an odd existing configuration", "[replica_config]") {
  auto w = derive_replica_config(leader_config(), 1);
  REQUIRE(w.is_ok());
  for (const Json& e : {Json(), Json::array(), Json("x"),
                        Json{{"subjects", (*w)["subjects"]}, {"storage", 7}},
                        Json{{"subjects", (*w)["subjects"]}, {"storage", "memory"}, {"retention", nullptr}},
                        Json{{"subjects", (*w)["subjects"]}, {"storage", "memory"}, {"deny_delete", "yes"}}}) {
    INFO(e.dump());
    std::string c;
    REQUIRE_NOTHROW(c = replica_conflict(e, *w));
    CHECK_FALSE(c.empty());
  }
}

TEST_CASE("limits that differ from the neutral ones are listed and replaced, everything else kept",
          "[replica_config]") {
  auto w = derive_replica_config(leader_config(), 1);
  REQUIRE(w.is_ok());
  const Json& wanted = *w;
  CHECK(replica_limit_changes(wanted, wanted).empty());

  // As nats-server reports a neutral stream: false booleans omitted.
  Json reported = wanted;
  reported.erase("discard_new_per_subject");
  CHECK(replica_limit_changes(reported, wanted).empty());

  // A replica created with the leader's limits (older Isthmus) or by hand with discard new.
  Json old = wanted;
  old["max_msgs"] = 10000;
  old["max_age"] = int64_t{86400} * 1000000000;
  old["discard"] = "new";
  old["num_replicas"] = 3;
  old["description"] = "made by hand";
  CHECK(replica_conflict(old, wanted).empty());  // compatible: updated, not refused
  auto ch = replica_limit_changes(old, wanted);
  REQUIRE(ch.size() == 3);
  CHECK(ch[0] == "discard: new -> old");
  CHECK(ch[1] == "max_age: 86400000000000 -> 0");
  CHECK(ch[2] == "max_msgs: 10000 -> -1");

  Json upd = with_neutral_limits(old, wanted);
  CHECK(upd["discard"] == "old");
  CHECK(upd["max_msgs"] == -1);
  CHECK(upd["max_age"] == 0);
  CHECK(upd["num_replicas"] == 3);             // not ours to change
  CHECK(upd["description"] == "made by hand");
  CHECK(replica_limit_changes(upd, wanted).empty());

  Json dnps = reported;
  dnps["discard_new_per_subject"] = true;
  REQUIRE(replica_limit_changes(dnps, wanted).size() == 1);
  CHECK(replica_limit_changes(dnps, wanted)[0] == "discard_new_per_subject: true -> false");
  CHECK(replica_limit_changes(Json::array(), wanted).empty());
}

TEST_CASE("durable names carry the follower region and are told apart from other consumers",
          "[replica_config]") {
  CHECK(durable_name("ams", 1795766283600) == "isthmus_ams_1795766283600");
  CHECK(durable_region(durable_name("ams", 7)) == "ams");
  CHECK(durable_region(durable_name("us_east", 7)) == "us_east");  // underscores in region names
  CHECK(durable_region(durable_name("a", 0)) == "a");
  for (const char* other : {"billing", "isthmus_retention_anchor", "isthmus_ams", "isthmus_ams_", "isthmus__12",
                            "isthmus_ams_12x", "Isthmus_ams_12", "xisthmus_ams_12", ""}) {
    INFO(other);
    CHECK(durable_region(other).empty());
  }
  CHECK(durable_region(kRetentionAnchor).empty());
}

TEST_CASE("a replica Isthmus created follows the leader's subjects; another stream is not ours", "[replica_config]") {
  auto w = derive_replica_config(leader_config(), 1);
  REQUIRE(w.is_ok());
  const Json& wanted = *w;
  CHECK(is_isthmus_replica(wanted, "COVENANT_USERS"));
  Json marked = wanted;
  marked["description"] = "Isthmus replica of COVENANT_USERS; isthmus:diverged=501";
  CHECK(is_isthmus_replica(marked, "COVENANT_USERS"));
  // Another stream's replica, a prefix of the name, a hand-made stream.
  CHECK_FALSE(is_isthmus_replica(wanted, "COVENANT_USER"));
  Json longer = wanted;
  longer["description"] = "Isthmus replica of COVENANT_USERS_OLD";
  CHECK_FALSE(is_isthmus_replica(longer, "COVENANT_USERS"));
  Json hand = wanted;
  hand.erase("description");
  CHECK_FALSE(is_isthmus_replica(hand, "COVENANT_USERS"));
  hand["description"] = 7;
  CHECK_FALSE(is_isthmus_replica(hand, "COVENANT_USERS"));

  CHECK(replica_subject_change(wanted, wanted).empty());
  Json reordered = wanted;
  reordered["subjects"] = Json::array({"covenant.user-events.*", "covenant.users.>"});
  CHECK(replica_subject_change(reordered, wanted).empty());
  Json fewer = wanted;
  fewer["subjects"] = Json::array({"covenant.users.>"});
  CHECK(replica_subject_change(fewer, wanted) == "[covenant.users.>] -> [covenant.user-events.*,covenant.users.>]");
  CHECK(replica_subject_change(wanted, fewer) == "[covenant.user-events.*,covenant.users.>] -> [covenant.users.>]");
}
