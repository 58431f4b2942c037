// Nothing lost silently: with a ring buffer far too small for the traffic and nobody reading it,
// the kernel side must drop events, and the agent must count every drop in /metrics and report it
// in its AgentStats event.
#include <cstdio>
#include <fstream>
#include <memory>

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
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();

  Child server({"python3", kServer});
  const std::string port = server.WaitForValue("port", std::chrono::seconds(10));
  ASSERT_FALSE(port.empty());
  // One connection: 40 exchanges while the agent does not poll (~110 KiB of events for an 8 KiB
  // ring), then, after the agent drained, 2 more on the same connection (~5 KiB: they fit).
  const std::string go = "/tmp/fl-loss-go-" + std::to_string(getpid());
  std::remove(go.c_str());
  Child client({"python3", kClient, "127.0.0.1", port, "40", "2", go});
  ASSERT_EQ(client.WaitForValue("phase1", std::chrono::seconds(30)), "done");
  (*agent)->Drain();
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
  const uint64_t response = std::string("HTTP/1.1 200 X\r\nContent-Length: 2000\r\n\r\n").size() + 2000;
  const uint64_t request = std::string("GET /bytes/2000 HTTP/1.1\r\nHost: x\r\n\r\n").size();
  auto http = sink.Events([](const v1::Event& e) { return e.has_http(); });
  EXPECT_LT(http.size(), 90u);
  size_t complete = 0;
  for (const auto& e : http) {
    if (e.http().outcome() != v1::HttpExchange::OUTCOME_COMPLETE) continue;
    EXPECT_EQ(e.http().path(), "/bytes/2000");
    EXPECT_EQ(e.http().status(), 200u);
    EXPECT_EQ(e.http().request_bytes(), request);
    EXPECT_EQ(e.http().response_bytes(), response);
    complete++;
  }
  // Phase 2's exchanges arrive complete and exact on both sides, paired with their own requests
  // (not with a request from phase 1 whose response was lost).
  EXPECT_GE(complete, 4u);
  for (v1::Role role : {v1::ROLE_SERVER, v1::ROLE_CLIENT}) {
    const v1::HttpExchange* last = nullptr;
    for (const auto& e : http)
      if (e.http().role() == role) last = &e.http();
    ASSERT_NE(last, nullptr);
    EXPECT_EQ(last->outcome(), v1::HttpExchange::OUTCOME_COMPLETE);
    EXPECT_LT(last->latency_ns(), 1'000'000'000u);  // its own request, not one from phase 1
  }
}

}  // namespace
}  // namespace faultline::testing
