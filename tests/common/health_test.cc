#include "faultline/common/health.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include "faultline/common/http_server.h"
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

TEST(HttpServer, ServesMetricsLivenessAndReadiness) {
  MetricsRegistry registry;
  registry.Counter("faultline_test_total", "A test counter").Increment(3);
  Health health;
  health.SetReady(false, "loading the eBPF programs");
  HttpServerOptions o;
  o.addr = "127.0.0.1:0", o.metrics = &registry, o.health = &health;
  auto server = HttpServer::Start(std::move(o));
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

TEST(HttpServer, ABadAddressIsRefusedWithTheFlag) {
  auto start = [](const std::string& addr) {
    HttpServerOptions o;
    o.addr = addr, o.flag = "--metrics-addr";
    return HttpServer::Start(std::move(o)).status().message();
  };
  EXPECT_EQ(start("9464"), "--metrics-addr '9464': expected HOST:PORT, e.g. 127.0.0.1:9464");
  EXPECT_EQ(start("127.0.0.1:http"),
            "--metrics-addr '127.0.0.1:http': the port must be a number 0..65535");
  EXPECT_EQ(start("127.0.0.1:65536"),
            "--metrics-addr '127.0.0.1:65536': the port must be a number 0..65535");
  EXPECT_EQ(start("[::1]"), "--metrics-addr '[::1]': expected HOST:PORT, e.g. 127.0.0.1:9464");
}

// Routes added by a process: capture groups, query parameters, statuses and content types.
TEST(HttpServer, ServesRoutesWithMatchesAndParameters) {
  std::vector<HttpRoute> routes;
  routes.push_back({R"(/things/([a-z]+))", [](const HttpRequest& r) {
                      return HttpReply{200, "{\"thing\":\"" + r.matches.at(0) + "\",\"n\":\"" +
                                                (r.params.count("n") ? r.params.at("n") : "") +
                                                "\"}"};
                    }});
  routes.push_back({"/fail", [](const HttpRequest&) {
                      return HttpReply::Error(NotFound("no such thing"));
                    }});
  HttpServerOptions o;
  o.addr = "[::1]:0", o.routes = std::move(routes);
  auto server = HttpServer::Start(std::move(o));
  if (!server.ok() && server.status().code() == StatusCode::kUnavailable)
    GTEST_SKIP() << "no IPv6 loopback here: " << server.status().message();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  httplib::Client client("::1", (*server)->port());
  auto thing = client.Get("/things/lamp?n=3");
  ASSERT_TRUE(thing);
  EXPECT_EQ(thing->status, 200);
  EXPECT_EQ(thing->body, R"({"thing":"lamp","n":"3"})");
  EXPECT_EQ(thing->get_header_value("Content-Type"), "application/json");
  auto fail = client.Get("/fail");
  ASSERT_TRUE(fail);
  EXPECT_EQ(fail->status, 404);
  EXPECT_EQ(fail->body, "no such thing\n");
  EXPECT_EQ(fail->get_header_value("Content-Type"), "text/plain");
  EXPECT_EQ(client.Get("/metrics")->status, 404);  // no registry given
}

}  // namespace
}  // namespace faultline
