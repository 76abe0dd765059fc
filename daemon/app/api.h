// The HTTP API's read endpoints: builds each report (data) and registers thin
// handlers for it (transport). Loop thread only; see docs/http-api.md.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "http/router.h"
#include "link/manager.h"
#include "replication/replicator.h"

namespace isthmus::app {

// The outcome of the last SIGHUP (none yet: reloads == 0).
struct ReloadStatus {
  uint64_t reloads = 0;          // SIGHUPs handled
  bool last_ok = true;           // the last one applied (or found nothing to apply)
  int64_t last_ns = 0;           // wall clock of the last one
  int64_t last_ok_ns = 0;        // wall clock of the last applied one (or of the start)
  std::string last_error;        // why the last one was refused ("" if it applied)
};

struct ApiSources {
  const config::Config* cfg = nullptr;
  const ReloadStatus* reload = nullptr;  // null: no reload (tests)
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

// POST /v1/streams/<name>/rebuild, registered by register_api(). Accepted
// only from a loopback peer (403 otherwise: the API has no authentication
// yet); 404 for an unknown stream or path, 409 when this region leads the
// stream (or the existing stream is not an Isthmus replica), 202 when
// accepted. `start` is Replicator::request_rebuild in the daemon; separate so
// the routing is unit-tested without one.
using RebuildStarter = std::function<Status(const std::string& stream)>;
void register_rebuild(http::Router& router, const config::Config* cfg, RebuildStarter start);

}  // namespace isthmus::app
