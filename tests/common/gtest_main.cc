// The main() of every GoogleTest binary (faultline_test() in cmake/faultline.cmake links it
// instead of gtest_main): the binary's exit status is its verdict for ctest, judged per case.
//  - 1 if any case failed (whatever the others did);
//  - 77 (ctest's SKIP_RETURN_CODE: reported as skipped) only if every case that ran was skipped;
//  - 0 otherwise; cases skipped beside passing ones are listed on stdout, one line each.
// With FAULTLINE_REQUIRE_EBPF=1 (CI) a skipped case is a failure: the only reason a case skips
// is a machine that cannot run the kernel side, and CI must run it.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

std::vector<std::string> SkippedCases(const ::testing::UnitTest& unit) {
  std::vector<std::string> out;
  for (int i = 0; i < unit.total_test_suite_count(); ++i) {
    const ::testing::TestSuite& suite = *unit.GetTestSuite(i);
    for (int j = 0; j < suite.total_test_count(); ++j) {
      const ::testing::TestInfo& info = *suite.GetTestInfo(j);
      if (info.should_run() && info.result()->Skipped())
        out.push_back(std::string(suite.name()) + "." + info.name());
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (RUN_ALL_TESTS() != 0) return 1;  // a case failed (or the run itself did)
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  const std::vector<std::string> skipped = SkippedCases(unit);
  if (skipped.empty()) return 0;
  const char* require = std::getenv("FAULTLINE_REQUIRE_EBPF");
  const bool required = require && std::string(require) == "1";
  for (const std::string& name : skipped)
    std::printf("faultline: %s: %s\n",
                required ? "FAILED (skipped under FAULTLINE_REQUIRE_EBPF=1)" : "skipped",
                name.c_str());
  if (required) {
    std::printf(
        "faultline: %zu of %d cases skipped; FAULTLINE_REQUIRE_EBPF=1 makes a skip a failure\n",
        skipped.size(), unit.test_to_run_count());
    return 1;
  }
  if (static_cast<int>(skipped.size()) == unit.test_to_run_count()) {
    std::printf("faultline: every case (%zu) skipped: reported as skipped (exit 77)\n",
                skipped.size());
    return 77;
  }
  std::printf("faultline: %zu of %d cases skipped, the others passed\n", skipped.size(),
              unit.test_to_run_count());
  return 0;
}
