// TCP health through a real lossy path: two network namespaces made by this test (198.18.0.1 and
// 198.18.0.2 on a veth pair), nftables in the server's namespace dropping 10% of the packets that
// arrive from the client (a drop in the sender's own output hook would be reported to TCP at once
// and never retransmitted). The agent must attribute the client's retransmits and the server
// side's NETFILTER_DROP drops to exactly that connection. The namespaces are always deleted.
#include <arpa/inet.h>

#include <fstream>
#include <set>
#include <memory>

#include "agent_harness.h"

namespace faultline::testing {
namespace {

const std::string kServer = std::string(FAULTLINE_SOURCE_DIR) + "/tests/integration/http_server.py";

class LossyPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FAULTLINE_REQUIRE_KERNEL_OR_SKIP();
    const std::string id = std::to_string(getpid());
    ns_a_ = "fl-a-" + id;
    ns_b_ = "fl-b-" + id;
    const std::string va = "fla" + id, vb = "flb" + id;
    Cleanup();
    const std::vector<std::string> setup = {
        "ip netns add " + ns_a_,
        "ip netns add " + ns_b_,
        "ip link add " + va + " type veth peer name " + vb,
        "ip link set " + va + " netns " + ns_a_,
        "ip link set " + vb + " netns " + ns_b_,
        "ip -n " + ns_a_ + " addr add 198.18.0.1/24 dev " + va,
        "ip -n " + ns_b_ + " addr add 198.18.0.2/24 dev " + vb,
        "ip -n " + ns_a_ + " link set " + va + " up",
        "ip -n " + ns_b_ + " link set " + vb + " up",
        "ip -n " + ns_a_ + " link set lo up",
        "ip -n " + ns_b_ + " link set lo up",
        "ip netns exec " + ns_b_ +
            " nft 'add table inet fl; add chain inet fl in { type filter hook input priority 0; }; "
            "add rule inet fl in ip saddr 198.18.0.1 tcp dport 8080 numgen random mod 10 == 0 drop'",
    };
    for (const auto& cmd : setup) ASSERT_EQ(RunCommand(cmd), 0) << cmd;
    made_ = true;
  }

  void TearDown() override {
    server_.reset();
    if (made_) Cleanup();
  }

  void Cleanup() {
    RunCommand("ip netns del " + ns_a_ + " 2>/dev/null");
    RunCommand("ip netns del " + ns_b_ + " 2>/dev/null");
  }

  std::string ns_a_, ns_b_;
  bool made_ = false;
  std::unique_ptr<Child> server_;
};

bool AddrIs(const std::string& bytes, const char* ip) {
  in_addr a{};
  inet_pton(AF_INET, ip, &a);
  return bytes == std::string(reinterpret_cast<const char*>(&a), 4);
}

TEST_F(LossyPathTest, RetransmitsAndDropsAreAttributedToTheLossyFlow) {
  MetricsRegistry metrics;
  CollectingSink sink;
  agent::AgentOptions opts;
  opts.probes.ignore_tgid = getpid();
  auto agent = agent::Agent::Start(opts, &sink, &metrics);
  FAULTLINE_ASSERT_STARTED(agent);

  server_ = std::make_unique<Child>(
      std::vector<std::string>{"ip", "netns", "exec", ns_b_, "python3", kServer, "198.18.0.2", "8080"});
  ASSERT_EQ(server_->WaitForValue("port", std::chrono::seconds(10)), "8080");

  const std::string body = "/tmp/fl-upload-" + std::to_string(getpid());
  { std::ofstream(body) << std::string(4 << 20, 'u'); }
  const int rc = RunCommand("ip netns exec " + ns_a_ + " curl -sS --max-time 60 -o /dev/null --data-binary @" + body +
                            " http://198.18.0.2:8080/echo");
  std::remove(body.c_str());
  ASSERT_EQ(rc, 0);
  (*agent)->Drain();

  // The client's side of the connection (198.18.0.1:port -> 198.18.0.2:8080) retransmits; the
  // server's side (198.18.0.2:8080 <- 198.18.0.1:port) sees the drops. Same port on both.
  uint64_t retransmits = 0, netfilter_drops = 0, packets_in = 0, other_netfilter_drops = 0;
  std::set<uint32_t> client_ports, server_seen_ports;
  for (const auto& e : sink.Events([](const v1::Event& e) { return e.has_flow_stats(); })) {
    const auto& c = e.connection();
    const auto& f = e.flow_stats();
    const auto it = f.drops().find("NETFILTER_DROP");
    const uint64_t nf = it == f.drops().end() ? 0 : it->second;
    if (AddrIs(c.local().addr(), "198.18.0.1") && AddrIs(c.remote().addr(), "198.18.0.2") &&
        c.remote().port() == 8080) {
      retransmits += f.retransmits();
      client_ports.insert(c.local().port());
      other_netfilter_drops += nf;
    } else if (AddrIs(c.local().addr(), "198.18.0.2") && c.local().port() == 8080 &&
               AddrIs(c.remote().addr(), "198.18.0.1")) {
      netfilter_drops += nf;
      packets_in += f.packets_in();
      server_seen_ports.insert(c.remote().port());
    } else {
      other_netfilter_drops += nf;
    }
  }
  EXPECT_GT(retransmits, 0u);
  EXPECT_GT(netfilter_drops, 0u);
  EXPECT_EQ(other_netfilter_drops, 0u);
  EXPECT_EQ(client_ports.size(), 1u);
  EXPECT_EQ(client_ports, server_seen_ports);
  // Packets are counted on arrival, before the input hook: about 10% of them are dropped.
  const double loss = static_cast<double>(netfilter_drops) / static_cast<double>(packets_in);
  EXPECT_GT(loss, 0.05) << netfilter_drops << " of " << packets_in;
  EXPECT_LT(loss, 0.15) << netfilter_drops << " of " << packets_in;

  // The exchange itself is seen on both sides, across namespaces.
  auto http = sink.Events([](const v1::Event& e) { return e.has_http() && e.http().path() == "/echo"; });
  ASSERT_EQ(http.size(), 2u);
  for (const auto& e : http) {
    EXPECT_EQ(e.http().status(), 200u);
    EXPECT_EQ(e.http().response_bytes(),
              std::string("HTTP/1.1 200 X\r\nContent-Length: 4194304\r\n\r\n").size() + (4u << 20));
  }
}

}  // namespace
}  // namespace faultline::testing
