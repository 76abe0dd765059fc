// Logging setup: spdlog to stderr (systemd's journal picks it up), as text or
// one JSON object per line.
// Thread: the first call from main before anything logs (it installs the
// one logger); later calls (SIGHUP, on the loop thread) change the level
// and format of that logger while other threads log through it.
#pragma once

#include <string>

#include "util/status.h"

namespace isthmus::app {

// Level and format as in the configuration's log.level and log.format. An
// unknown level or format changes nothing.
Status setup_logging(const std::string& level, const std::string& format);

}  // namespace isthmus::app
