#include "app/scheduling.h"

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace isthmus::app {

namespace {

std::string policy_name(int policy) {
  switch (policy) {
    case SCHED_OTHER:
      return "other";
    case SCHED_BATCH:
      return "batch";
    case SCHED_IDLE:
      return "idle";
    case SCHED_FIFO:
      return "fifo";
    case SCHED_RR:
      return "rr";
  }
  return "policy " + std::to_string(policy);
}

}  // namespace

Result<std::string> apply_cpu_scheduling(std::string_view policy) {
  int current = sched_getscheduler(0);
  if (current < 0) return Status(Code::kIo, std::string("sched_getscheduler: ") + std::strerror(errno));
  // systemd's CPUSchedulingResetOnFork=yes shows as a flag on the policy.
  const bool reset_on_fork = (current & SCHED_RESET_ON_FORK) != 0;
  current &= ~SCHED_RESET_ON_FORK;
  if (policy == "inherit" || current != SCHED_OTHER) return policy_name(current);
  if (policy != "batch") return Status(Code::kInvalid, "unknown cpu_scheduling policy: " + std::string(policy));
  // An unprivileged process may always move from SCHED_OTHER to SCHED_BATCH.
  sched_param p{};
  p.sched_priority = 0;
  if (sched_setscheduler(0, SCHED_BATCH | (reset_on_fork ? SCHED_RESET_ON_FORK : 0), &p) != 0) {
    return Status(Code::kIo, std::string("sched_setscheduler(SCHED_BATCH): ") + std::strerror(errno));
  }
  return policy_name(SCHED_BATCH);
}

}  // namespace isthmus::app
