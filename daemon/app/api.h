// The HTTP API's read endpoints: builds each report (data) and registers thin
// handlers for it (transport). Loop thread only; see docs/http-api.md.
#pragma once

#include <nlohmann/json.hpp>

#include "http/router.h"
#include "link/manager.h"
#include "replication/replicator.h"

namespace isthmus::app {

struct ApiSources {
  const config::Config* cfg = nullptr;
  replication::Replicator* replicator = nullptr;
  const link::Manager* links = nullptr;
  const nats::Client* nats = nullptr;
  int64_t started_ns = 0;
};

// {"status":"ok"|"unhealthy","reasons":[...],...}; healthy means the local
// NATS connection and every link are up and no stream is diverged or failing.
nlohmann::json health_report(const ApiSources& src, bool& healthy);
nlohmann::json links_report(const ApiSources& src);

void register_api(http::Router& router, const ApiSources& src);

}  // namespace isthmus::app
