// systemd integration (Type=notify): READY, STOPPING, STATUS and the watchdog.
// Without libsystemd, or when not started by systemd, every call is a no-op.
#pragma once

#include <cstdint>
#include <string>

namespace isthmus::app {

void notify_ready();
void notify_stopping();
void notify_status(const std::string& status);
void notify_watchdog();
// Watchdog interval systemd expects pings at (0 when disabled), in ms.
uint64_t watchdog_interval_ms();

}  // namespace isthmus::app
