#include "seed_streams.h"

namespace harness {

const std::vector<SeedStream>& seed_streams() {
  static const std::vector<SeedStream> s = {
      {"COVENANT_COUNTRIES",
       {"covenant.countries.created", "covenant.countries.updated", "covenant.countries.deleted"},
       "interest", 2592000000LL * 1000000, 1000000, "old", 3},
      {"COVENANT_PROJECTS",
       {"covenant.projects.created", "covenant.projects.updated", "covenant.projects.deleted"},
       "interest", 2592000000LL * 1000000, 1000000, "old", 2},
      {"COVENANT_USERS", {"covenant.users.created", "covenant.users.updated", "covenant.users.deleted"},
       "interest", 604800000LL * 1000000, 100000, "old", 2},
      {"ALERTS_INCIDENTS", {"alerts.incidents.critical", "alerts.incidents.warning", "alerts.incidents.info"},
       "limits", 86400000LL * 1000000, 10000, "new", 1},
  };
  return s;
}

nlohmann::json seed_stream_config(const SeedStream& s) {
  return {{"name", s.name},          {"subjects", s.subjects}, {"retention", s.retention},
          {"max_age", s.max_age_ns}, {"max_msgs", s.max_msgs}, {"discard", s.discard},
          {"storage", "file"},       {"num_replicas", 1}};
}

void create_seed_streams(JetStream& js) {
  for (const auto& s : seed_streams()) {
    js.create_stream(seed_stream_config(s));
    if (s.retention == "interest")
      js.api("$JS.API.CONSUMER.DURABLE.CREATE." + s.name + ".ANALYTICS",
             {{"stream_name", s.name},
              {"config", {{"durable_name", "ANALYTICS"}, {"ack_policy", "explicit"}, {"deliver_policy", "all"}}}});
  }
}

}  // namespace harness
