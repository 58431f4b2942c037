// A GoogleTest binary with one case of each outcome, for gtest_verdict_test.sh: it picks a mix
// with --gtest_filter and checks the verdict ctest gives the mix under the registration every
// faultline_test() binary has.
#include <gtest/gtest.h>

namespace {

TEST(Probe, Passes) { SUCCEED(); }

TEST(Probe, Fails) { ADD_FAILURE() << "this case fails on purpose"; }

TEST(Probe, Skips) { GTEST_SKIP() << "this case skips on purpose"; }

}  // namespace
