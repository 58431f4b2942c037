#include "faultline/detectors/plugin_loader.h"

#include <gtest/gtest.h>

namespace faultline::detectors {
namespace {

TEST(PluginLoader, RefusesAWrongAbiMajorVersion) {
  auto p = DetectorPlugin::Load(WRONG_ABI_SO);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), std::string(WRONG_ABI_SO) +
                                      ": plugin ABI version 99.0, but this faultline speaks 1.x: rebuild the plugin "
                                      "against this faultline's plugin_abi.h");
}

TEST(PluginLoader, RefusesALibraryWithoutTheEntrySymbol) {
  auto p = DetectorPlugin::Load(NO_SYMBOL_SO);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), std::string(NO_SYMBOL_SO) +
                                      ": no symbol faultline_detector_plugin (not a faultline detector plugin, or "
                                      "the symbol is not extern \"C\")");
}

TEST(PluginLoader, RefusesATableWithoutARequiredFunction) {
  auto p = DetectorPlugin::Load(NO_OBSERVE_SO);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), std::string(NO_OBSERVE_SO) + ": plugin 'no_observe' lacks the required function observe");
}

TEST(PluginLoader, AMissingFileNamesThePath) {
  auto p = DetectorPlugin::Load("/nonexistent/plugin.so");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message().rfind("/nonexistent/plugin.so: cannot load plugin: ", 0), 0u);
}

TEST(PluginLoader, GarbageVerdictsAreReplacedAndCountedWithTheFirstReason) {
  auto p = DetectorPlugin::Load(GARBAGE_SO);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  auto d = (*p)->Create({});
  ASSERT_TRUE(d.ok());
  EXPECT_DOUBLE_EQ((*d)->Observe(1, 0).score, 0.5);
  const Verdict nan = (*d)->Observe(2, 0);
  EXPECT_FALSE(nan.anomalous);
  EXPECT_EQ(nan.score, 0.0);
  (*d)->Observe(3, 0);
  EXPECT_EQ((*d)->garbage(), 2u);
  EXPECT_EQ((*d)->first_garbage(), "garbage: at t=2: score nan is outside [0, 1]");
}

}  // namespace
}  // namespace faultline::detectors
