#include "replication/log_limiter.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using isthmus::replication::LogLimiter;

TEST_CASE("log limiter: a burst per kind and window, then one line with the count", "[replication][log]") {
  constexpr int64_t s = 1'000'000'000;
  LogLimiter lim(3, 10 * s);
  std::vector<std::string> lines;
  lim.set_sink([&](const std::string& l) { lines.push_back(l); });
  // 250 streams time out at once: 3 logged, 247 held.
  int allowed = 0;
  for (int i = 0; i < 250; ++i) allowed += lim.allow("cannot read local stream", 100 * s) ? 1 : 0;
  CHECK(allowed == 3);
  // Another cause has its own burst.
  CHECK(lim.allow("reader recreated", 100 * s));
  // Nothing said before the window is over.
  lim.flush(105 * s);
  CHECK(lines.empty());
  lim.flush(110 * s);
  REQUIRE(lines.size() == 1);  // the other kind held nothing
  CHECK(lines[0].find("247 more warning(s) \"cannot read local stream\" in 10 s not logged") != std::string::npos);
  // A new window starts afresh.
  CHECK(lim.allow("cannot read local stream", 111 * s));
  // A window that ends at the next allow() reports there too.
  CHECK(lim.allow("x", 200 * s));
  CHECK(lim.allow("x", 200 * s));
  CHECK(lim.allow("x", 200 * s));
  CHECK_FALSE(lim.allow("x", 201 * s));
  CHECK(lim.allow("x", 211 * s));
  REQUIRE(lines.size() == 2);
  CHECK(lines[1].find("1 more warning(s) \"x\"") != std::string::npos);
}
