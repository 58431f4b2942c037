#include "faultline/common/health.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include "faultline/common/metrics.h"

namespace faultline {
namespace {

using std::chrono::seconds;

TEST(Health, LiveWhileTheLoopBeatsAndNamesHowLongItStalled) {
  Health h(seconds(30));
  const auto t0 = Health::Clock::now();
  h.Beat(t0);
  EXPECT_EQ(h.Liveness(t0 + seconds(30)), (std::pair<int, std::string>{200, "ok\n"}));
  EXPECT_EQ(h.Liveness(t0 + seconds(45)),
            (std::pair<int, std::string>{
                503, "the main loop has not run for 45.0 s (the limit is 30.0 s)\n"}));
  h.Beat(t0 + seconds(50));
  EXPECT_EQ(h.Liveness(t0 + seconds(51)).first, 200);
}

TEST(Health, ReadyOnlyWhenSaidWithTheReasonOtherwise) {
  Health h;
  EXPECT_EQ(h.Readiness(), (std::pair<int, std::string>{503, "not ready: starting\n"}));
  h.SetReady(false, "opening 4 assigned partitions");
  EXPECT_EQ(h.Readiness(),
            (std::pair<int, std::string>{503, "not ready: opening 4 assigned partitions\n"}));
  h.SetReady(true);
  EXPECT_EQ(h.Readiness(), (std::pair<int, std::string>{200, "ready\n"}));
}

TEST(MetricsServer, ServesMetricsLivenessAndReadiness) {
  MetricsRegistry registry;
  registry.Counter("faultline_test_total", "A test counter").Increment(3);
  Health health;
  health.SetReady(false, "loading the eBPF programs");
  auto server = MetricsServer::Start("127.0.0.1:0", registry, &health);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  httplib::Client client("127.0.0.1", (*server)->port());
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("faultline_test_total 3"), std::string::npos) << metrics->body;
  auto live = client.Get("/healthz");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
  EXPECT_EQ(live->body, "ok\n");
  auto ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_EQ(ready->body, "not ready: loading the eBPF programs\n");
  health.SetReady(true);
  EXPECT_EQ(client.Get("/readyz")->status, 200);
}

TEST(MetricsServer, ABadAddressIsRefusedWithTheFlag) {
  MetricsRegistry registry;
  EXPECT_EQ(MetricsServer::Start("9464", registry).status().message(),
            "--metrics-addr '9464': expected HOST:PORT, e.g. 127.0.0.1:9464");
  EXPECT_EQ(MetricsServer::Start("127.0.0.1:http", registry).status().message(),
            "--metrics-addr '127.0.0.1:http': the port must be a number 0..65535");
}

}  // namespace
}  // namespace faultline
