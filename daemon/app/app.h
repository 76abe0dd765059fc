// App: wires the daemon together and runs the loop.
//
//   main -> App::run
//     loop thread: links (link::Manager), HTTP API (http::Server),
//                  replication (replication::Replicator), signals, timers
//     NATS worker thread + cnats threads (nats::Client), reporting to the
//                  loop through one loop::Mailbox
//
// Signals: SIGTERM/SIGINT drain (no new work; in-flight replica writes finish
// for up to 5 s), then close links with a goodbye, stop the HTTP server, close
// the NATS connection and end the loop cleanly. SIGHUP re-reads the
// configuration file and applies it when every change is reloadable
// (docs/configuration.md, "Reload"); otherwise nothing changes.
// Thread: construct and run on the main thread, which becomes the loop thread.
#pragma once

#include "config/config.h"

namespace isthmus::app {

// Runs the daemon until a terminating signal; returns the process exit code.
int run(const config::Config& cfg);

}  // namespace isthmus::app
