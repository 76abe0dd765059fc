#include "app/notify.h"

#include "isthmus_build.h"

#if ISTHMUS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace isthmus::app {

#if ISTHMUS_HAVE_SYSTEMD
void notify_ready() { sd_notify(0, "READY=1"); }
void notify_stopping() { sd_notify(0, "STOPPING=1"); }
void notify_status(const std::string& status) { sd_notify(0, ("STATUS=" + status).c_str()); }
void notify_watchdog() { sd_notify(0, "WATCHDOG=1"); }
uint64_t watchdog_interval_ms() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) return usec / 1000;
  return 0;
}
#else
void notify_ready() {}
void notify_stopping() {}
void notify_status(const std::string&) {}
void notify_watchdog() {}
uint64_t watchdog_interval_ms() { return 0; }
#endif

}  // namespace isthmus::app
