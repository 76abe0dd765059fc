// Logging setup: spdlog to stderr (systemd's journal picks it up), as text or
// one JSON object per line. Call once from main before anything logs.
#pragma once

#include <string>

#include "util/status.h"

namespace isthmus::app {

Status setup_logging(const std::string& level, const std::string& format);

}  // namespace isthmus::app
