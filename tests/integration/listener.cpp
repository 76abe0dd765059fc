// Tells the harness whether the current test case has failed, so fixtures
// keep their temp dirs and print log tails only when something went wrong.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include "util.h"

namespace {

struct HarnessListener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(Catch::TestCaseInfo const& info) override {
    harness::set_test_failed(false);
    std::fprintf(stderr, "[harness] --- test case: %s\n", info.name.c_str());
  }
  bool assertionEnded(Catch::AssertionStats const& stats) override {
    if (!stats.assertionResult.isOk()) harness::set_test_failed(true);
    return true;
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(HarnessListener)
