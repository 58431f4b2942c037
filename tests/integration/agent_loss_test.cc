// Nothing lost silently: with a ring buffer far too small for the traffic and nobody reading it,
// the kernel side must drop events, and the agent must count every drop in /metrics and report it
// in its AgentStats event.
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include "agent_harness.h"

namespace faultline::testing {
namespace {

const std::string kServer = std::string(FAULTLINE_SOURCE_DIR) + "/tests/integration/http_server.py";
const std::string kClient = std::string(FAULTLINE_SOURCE_DIR) + "/tests/integration/phased_client.py";

TEST(AgentLoss, RingBufferOverflowIsCountedInMetricsAndAgentStats) {
  FAULTLINE_REQUIRE_KERNEL_OR_SKIP();
  MetricsRegistry metrics;
  CollectingSink sink;
  agent::AgentOptions opts;
  opts.probes.ignore_tgid = getpid();
  opts.probes.ring_bytes = 8192;  // room for a few events only
  auto agent = agent::Agent::Start(opts, &sink, &metrics);
  FAULTLINE_ASSERT_STARTED(agent);

  Child server({"python3", kServer});
  const std::string port = server.WaitForValue("port", std::chrono::seconds(10));
  ASSERT_FALSE(port.empty());
  // One connection: 40 exchanges of /bytes/2000 while the agent does not poll (~110 KiB of events
  // for an 8 KiB ring), then, after the agent drained and at least kGap later, 2 of /bytes/3000 on
  // the same connection (~5 KiB: they fit). The gap is a lower bound on the latency of any
  // exchange that paired a phase-2 response with a phase-1 request.
  constexpr auto kGap = std::chrono::milliseconds(400);
  const std::string go = "/tmp/fl-loss-go-" + std::to_string(getpid());
  std::remove(go.c_str());
  Child client({"python3", kClient, "127.0.0.1", port, "40", "2", go, "2000", "3000"});
  ASSERT_EQ(client.WaitForValue("phase1", std::chrono::seconds(30)), "done");
  const auto phase1_done = std::chrono::steady_clock::now();
  (*agent)->Drain();
  std::this_thread::sleep_until(phase1_done + kGap);  // a gap to measure against, not a wait
  { std::ofstream(go) << "go"; }
  ASSERT_EQ(client.WaitForValue("phase2", std::chrono::seconds(30)), "done");
  std::remove(go.c_str());
  (*agent)->Drain();

  const std::string text = metrics.RenderText();
  const std::string key = "faultline_agent_dropped_total{reason=\"kernel_ringbuf_full\"} ";
  const size_t at = text.find(key);
  ASSERT_NE(at, std::string::npos) << text;
  const double dropped = std::stod(text.substr(at + key.size()));
  EXPECT_GT(dropped, 0);

  uint64_t reported = 0;
  for (const auto& e : sink.Events([](const v1::Event& e) { return e.has_agent_stats(); })) {
    const auto& d = e.agent_stats().dropped();
    if (auto it = d.find("kernel_ringbuf_full"); it != d.end()) reported += it->second;
  }
  EXPECT_EQ(static_cast<double>(reported), dropped);
  // The parser saw the holes (stream offsets jumped) instead of mis-framing across them: fewer
  // exchanges than requests came through, and every one reported complete has exact sizes.
  EXPECT_NE(text.find("faultline_agent_stream_gaps_total "), std::string::npos);
  EXPECT_EQ(text.find("faultline_agent_stream_gaps_total 0"), std::string::npos) << "no gap was seen";
  auto sizes = [](int body) {
    return std::pair<uint64_t, uint64_t>{
        std::string("GET /bytes/" + std::to_string(body) + " HTTP/1.1\r\nHost: x\r\n\r\n").size(),
        std::string("HTTP/1.1 200 X\r\nContent-Length: " + std::to_string(body) + "\r\n\r\n").size() +
            static_cast<uint64_t>(body)};
  };
  const auto [request1, response1] = sizes(2000);
  const auto [request2, response2] = sizes(3000);
  auto http = sink.Events([](const v1::Event& e) { return e.has_http(); });
  for (v1::Role role : {v1::ROLE_SERVER, v1::ROLE_CLIENT}) {
    SCOPED_TRACE(role == v1::ROLE_SERVER ? "server side" : "client side");
    std::vector<const v1::HttpExchange*> side;
    for (const auto& e : http)
      if (e.http().role() == role) side.push_back(&e.http());
    // At most one exchange per request (42 on each side); a hole never invents exchanges.
    EXPECT_LE(side.size(), 42u);
    ASSERT_GE(side.size(), 2u);
    // Every complete phase-1 exchange has phase 1's exact request and response.
    for (size_t i = 0; i + 2 < side.size(); ++i) {
      if (side[i]->outcome() != v1::HttpExchange::OUTCOME_COMPLETE) continue;
      EXPECT_EQ(side[i]->path(), "/bytes/2000");
      EXPECT_EQ(side[i]->request_bytes(), request1);
      EXPECT_EQ(side[i]->response_bytes(), response1);
    }
    // The last two are exactly phase 2's, complete, each paired with its own request: the right
    // path and sizes, and a latency below the gap a mis-paired one would include.
    for (size_t i = side.size() - 2; i < side.size(); ++i) {
      const v1::HttpExchange& x = *side[i];
      EXPECT_EQ(x.outcome(), v1::HttpExchange::OUTCOME_COMPLETE);
      EXPECT_EQ(x.path(), "/bytes/3000");
      EXPECT_EQ(x.status(), 200u);
      EXPECT_EQ(x.request_bytes(), request2);
      EXPECT_EQ(x.response_bytes(), response2);
      EXPECT_LT(x.latency_ns(), static_cast<uint64_t>(
                                    std::chrono::nanoseconds(kGap).count()));
    }
    // And nothing else asked for /bytes/3000.
    size_t phase2 = 0;
    for (const auto* x : side) phase2 += x->path() == "/bytes/3000";
    EXPECT_EQ(phase2, 2u);
  }
}

}  // namespace
}  // namespace faultline::testing
