// How the daemon's threads are scheduled by the kernel.
//
// isthmusd runs beside the region's nats-server, usually on the same cores.
// Under SCHED_BATCH a thread that wakes up (a delivery from cnats, a frame
// from a link) does not preempt whatever runs on its core; it runs when that
// thread yields or its slice ends. The daemon then handles what arrived
// meanwhile in one go instead of waking once per message, and the
// nats-servers it feeds and reads from keep their cores. Measured in the
// replication benchmark (docs/benchmarks.md, "Session 6"): both daemons'
// CPU per live message -10 to -26%, end-to-end live lag lower, not higher.
//
// Thread: call on the main thread before any other thread is started; every
// thread created afterwards (libuv, cnats, the NATS worker) inherits it.
#pragma once

#include <string_view>

#include "util/status.h"

namespace isthmus::app {

// policy: "batch" or "inherit". "batch" moves the process from the default
// policy (SCHED_OTHER) to SCHED_BATCH, nice value unchanged; a policy other
// than SCHED_OTHER at start (chosen by the service manager, e.g. systemd's
// CPUSchedulingPolicy=) is kept. Returns the policy the daemon now runs
// under ("other", "batch", "idle", "fifo", "rr"). An error leaves the policy
// as it was; the daemon runs on regardless.
Result<std::string> apply_cpu_scheduling(std::string_view policy);

}  // namespace isthmus::app
