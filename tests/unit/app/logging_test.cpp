// log.level: every value the configuration accepts sets a real level.
#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

#include "app/logging.h"
#include "config/schema.h"

using isthmus::app::setup_logging;
using isthmus::config::find_key;

TEST_CASE("every log.level the configuration accepts sets that level", "[app][logging]") {
  const auto* key = find_key("log", "level");
  REQUIRE(key != nullptr);
  std::string_view choices = key->choices;
  int n = 0;
  for (size_t start = 0; start <= choices.size();) {
    size_t bar = choices.find('|', start);
    if (bar == std::string_view::npos) bar = choices.size();
    std::string level(choices.substr(start, bar - start));
    start = bar + 1;
    INFO(level);
    REQUIRE(setup_logging(level, "text"));
    CHECK(spdlog::default_logger()->level() != spdlog::level::off);
    ++n;
  }
  CHECK(n >= 5);
  // The two spellings of the warning level (docs/configuration.md).
  REQUIRE(setup_logging("warn", "text"));
  CHECK(spdlog::default_logger()->level() == spdlog::level::warn);
  REQUIRE(setup_logging("warning", "json"));
  CHECK(spdlog::default_logger()->level() == spdlog::level::warn);
  CHECK_FALSE(setup_logging("verbose", "text"));
}
