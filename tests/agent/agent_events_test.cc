// The agent's translation of kernel events into EventBatches, on recorded events and maps (a
// ProbeSource that replays them), without a kernel: an HTTP exchange from socket syscalls, a
// connect and a reset, per-flow counters as deltas with their drops, the kernel's loss counters,
// and the agent's own socket left out.
#include <gtest/gtest.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "events.pb.h"
#include "faultline/agent/agent.h"
#include "faultline/agent/kernel_probes.h"

namespace faultline::agent {
namespace {

uint64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + ts.tv_nsec;
}

// What a test queues and sets; RecordedProbes reads it.
struct Recording {
  struct Sock {
    fl_sock_event header;
    std::string payload;
  };
  std::deque<Sock> socks;
  std::deque<fl_tcp_event> tcps;
  std::vector<FlowSample> flows;
  std::vector<DropSample> drops;
  std::map<std::string, fl_sock_owner> owners;  // by flow key bytes
  std::array<uint64_t, FL_KSTAT_MAX> kstats{};
  std::vector<fl_flow_key> forgotten;
};

std::string KeyBytes(const fl_flow_key& k) { return {reinterpret_cast<const char*>(&k), sizeof(k)}; }

class RecordedProbes : public ProbeSource {
 public:
  RecordedProbes(Recording* r, Handlers h) : r_(r), h_(std::move(h)) {}
  int Poll(int) override {
    int n = 0;
    for (; !r_->socks.empty(); r_->socks.pop_front(), ++n)
      h_.on_sock(r_->socks.front().header, r_->socks.front().payload);
    for (; !r_->tcps.empty(); r_->tcps.pop_front(), ++n) h_.on_tcp(r_->tcps.front());
    return n;
  }
  void ReadFlows(std::vector<FlowSample>* flows, std::vector<DropSample>* drops) const override {
    *flows = r_->flows;
    *drops = r_->drops;
  }
  void ForgetFlows(const std::vector<fl_flow_key>& keys) override {
    r_->forgotten.insert(r_->forgotten.end(), keys.begin(), keys.end());
  }
  bool Owner(const fl_flow_key& key, fl_sock_owner* owner) const override {
    auto it = r_->owners.find(KeyBytes(key));
    if (it == r_->owners.end()) return false;
    *owner = it->second;
    return true;
  }
  bool resources() const override { return false; }
  void ReadResources(std::vector<RunqSample>* runq, std::vector<IoSample>* io) const override {
    runq->clear(), io->clear();
  }
  void ForgetResources(const std::vector<uint64_t>&, const std::vector<fl_io_key>&) override {}
  std::array<uint64_t, FL_KSTAT_MAX> KernelStats() const override { return r_->kstats; }
  std::string DropReasonName(uint32_t reason) const override {
    return reason == 2 ? "NO_SOCKET" : "REASON_" + std::to_string(reason);
  }

 private:
  Recording* r_;
  Handlers h_;
};

class CapturingSink : public BatchSink {
 public:
  void Publish(const v1::EventBatch& batch) override { batches.push_back(batch); }
  std::vector<v1::EventBatch> batches;
  // Every event of every batch of one kind.
  std::vector<v1::Event> Events(v1::Event::KindCase kind) const {
    std::vector<v1::Event> out;
    for (const auto& b : batches)
      for (const auto& e : b.events())
        if (e.kind_case() == kind) out.push_back(e);
    return out;
  }
};

class AgentEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AgentOptions o;
    o.node_name = "node-7";
    o.container_meta = false;
    o.probe_source = [this](const ProbeOptions&, ProbeSource::Handlers h)
        -> Result<std::unique_ptr<ProbeSource>> {
      return std::unique_ptr<ProbeSource>(std::make_unique<RecordedProbes>(&rec_, std::move(h)));
    };
    auto agent = Agent::Start(o, &sink_, &metrics_);
    ASSERT_TRUE(agent.ok()) << agent.status().ToString();
    agent_ = std::move(*agent);
    // 10.0.0.1:40000 (this process, the client) -> 10.0.0.2:8080.
    tuple_.family = FL_AF_INET;
    std::memcpy(tuple_.laddr, "\x0a\x00\x00\x01", 4);
    std::memcpy(tuple_.raddr, "\x0a\x00\x00\x02", 4);
    tuple_.lport = 40000, tuple_.rport = 8080;
    std::memcpy(flow_.laddr, tuple_.laddr, 16);
    std::memcpy(flow_.raddr, tuple_.raddr, 16);
    flow_.lport = tuple_.lport, flow_.rport = tuple_.rport;
  }
  void Sock(uint8_t kind, uint8_t direction, uint64_t ts, std::string payload = "",
            uint64_t offset = 0) {
    fl_sock_event e{};
    e.ts_ns = ts, e.sock_id = 7, e.tgid = static_cast<uint32_t>(getpid());
    e.kind = kind, e.direction = direction, e.role = FL_ROLE_CLIENT, e.flags = FL_SOCK_F_TUPLE;
    e.total_bytes = payload.size(), e.captured = static_cast<uint16_t>(payload.size());
    e.stream_offset = offset;
    std::strncpy(e.comm, "shop", sizeof(e.comm));
    e.tuple = tuple_;
    rec_.socks.push_back({e, std::move(payload)});
  }
  fl_tcp_event Tcp(uint8_t kind, uint64_t ts) {
    fl_tcp_event t{};
    t.ts_ns = ts, t.tgid = static_cast<uint32_t>(getpid()), t.kind = kind, t.tuple = tuple_;
    std::strncpy(t.comm, "shop", sizeof(t.comm));
    return t;
  }
  std::string Metrics() const { return metrics_.RenderText(); }

  Recording rec_;
  CapturingSink sink_;
  MetricsRegistry metrics_;
  std::unique_ptr<Agent> agent_;
  fl_tuple tuple_{};
  fl_flow_key flow_{};
};

TEST_F(AgentEventsTest, SocketSyscallsBecomeOneHttpExchange) {
  const uint64_t t0 = MonoNs();
  Sock(FL_SOCK_OPEN, FL_DIR_NONE, t0);
  const std::string request = "GET /cart?id=3 HTTP/1.1\r\nHost: cart\r\n\r\n";
  Sock(FL_SOCK_DATA, FL_DIR_EGRESS, t0 + 1'000'000, request);
  const std::string response = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno";
  Sock(FL_SOCK_DATA, FL_DIR_INGRESS, t0 + 5'000'000, response);
  Sock(FL_SOCK_CLOSE, FL_DIR_NONE, t0 + 6'000'000);
  agent_->Drain();
  const auto http = sink_.Events(v1::Event::kHttp);
  ASSERT_EQ(http.size(), 1u);
  const v1::HttpExchange& h = http[0].http();
  EXPECT_EQ(h.role(), v1::ROLE_CLIENT);
  EXPECT_EQ(h.method(), "GET");
  EXPECT_EQ(h.status(), 503u);
  EXPECT_EQ(h.latency_ns(), 4'000'000u);
  EXPECT_EQ(h.outcome(), v1::HttpExchange::OUTCOME_COMPLETE);
  EXPECT_EQ(h.request_bytes(), request.size());
  EXPECT_EQ(h.response_bytes(), response.size());
  EXPECT_EQ(http[0].pid(), static_cast<uint32_t>(getpid()));
  EXPECT_EQ(http[0].connection().local().addr(), std::string("\x0a\x00\x00\x01", 4));
  EXPECT_EQ(http[0].connection().remote().port(), 8080u);
  ASSERT_EQ(sink_.batches.size(), 1u);
  const v1::EventBatch& b = sink_.batches[0];
  EXPECT_EQ(b.node().name(), "node-7");
  ASSERT_EQ(b.processes_size(), 1);
  EXPECT_EQ(b.processes(0).pid(), static_cast<uint32_t>(getpid()));
  EXPECT_NE(Metrics().find("faultline_agent_events_total{kind=\"http\"} 1"), std::string::npos);
}

TEST_F(AgentEventsTest, AGapInTheStreamIsSkippedAndCounted) {
  const uint64_t t0 = MonoNs();
  Sock(FL_SOCK_OPEN, FL_DIR_NONE, t0);
  Sock(FL_SOCK_DATA, FL_DIR_EGRESS, t0 + 1000, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 0);
  // 100 bytes of this direction were lost before the next request.
  Sock(FL_SOCK_DATA, FL_DIR_EGRESS, t0 + 2000, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", 128);
  agent_->Drain();
  EXPECT_NE(Metrics().find("faultline_agent_stream_gaps_total 1"), std::string::npos) << Metrics();
}

TEST_F(AgentEventsTest, ConnectsAndResetsCarryTheirResultAndSide) {
  const uint64_t t0 = MonoNs();
  fl_tcp_event connect = Tcp(FL_TCP_CONNECT, t0);
  connect.result = FL_CONNECT_ESTABLISHED, connect.duration_ns = 250'000;
  rec_.tcps.push_back(connect);
  fl_tcp_event refused = Tcp(FL_TCP_CONNECT, t0 + 10);
  refused.result = FL_CONNECT_REFUSED;
  rec_.tcps.push_back(refused);
  fl_tcp_event reset = Tcp(FL_TCP_RESET_SENT, t0 + 20);
  reset.role = FL_ROLE_SERVER;
  rec_.tcps.push_back(reset);
  fl_tcp_event own = Tcp(FL_TCP_CONNECT, t0 + 30);
  own.self = 1;  // the agent's own socket: left out
  rec_.tcps.push_back(own);
  agent_->Drain();
  const auto connects = sink_.Events(v1::Event::kTcpConnect);
  ASSERT_EQ(connects.size(), 2u);
  EXPECT_EQ(connects[0].tcp_connect().result(), v1::TcpConnect::RESULT_ESTABLISHED);
  EXPECT_EQ(connects[0].tcp_connect().duration_ns(), 250'000u);
  EXPECT_EQ(connects[1].tcp_connect().result(), v1::TcpConnect::RESULT_REFUSED);
  const auto resets = sink_.Events(v1::Event::kTcpReset);
  ASSERT_EQ(resets.size(), 1u);
  EXPECT_EQ(resets[0].tcp_reset().direction(), v1::TcpReset::DIRECTION_SENT);
  EXPECT_EQ(resets[0].tcp_reset().role(), v1::ROLE_SERVER);
  EXPECT_NE(Metrics().find("faultline_agent_excluded_total{reason=\"self\"} 1"), std::string::npos);
}

TEST_F(AgentEventsTest, FlowCountersGoOutAsDeltasWithTheirDropsAndOwner) {
  fl_flow_stats stats{};
  stats.packets_out = 10, stats.bytes_out = 1000, stats.packets_in = 8, stats.bytes_in = 4000;
  stats.retransmits = 2, stats.srtt_us = 300, stats.last_seen_ns = MonoNs();
  rec_.flows = {{flow_, stats}};
  rec_.drops = {{{flow_, 2, 0}, 3}};
  fl_sock_owner owner{};
  owner.tgid = static_cast<uint32_t>(getpid()), owner.role = FL_ROLE_CLIENT;
  std::strncpy(owner.comm, "shop", sizeof(owner.comm));
  rec_.owners[KeyBytes(flow_)] = owner;
  rec_.kstats[FL_KSTAT_RINGBUF_FULL] = 4;
  agent_->Drain();
  stats.packets_out = 15, stats.retransmits = 2;  // 5 more packets, no more retransmits
  rec_.flows = {{flow_, stats}};
  agent_->Drain();
  const auto flows = sink_.Events(v1::Event::kFlowStats);
  ASSERT_EQ(flows.size(), 2u);
  const v1::FlowStats& first = flows[0].flow_stats();
  EXPECT_EQ(first.packets_out(), 10u);
  EXPECT_EQ(first.bytes_in(), 4000u);
  EXPECT_EQ(first.retransmits(), 2u);
  EXPECT_EQ(first.srtt_us(), 300u);
  EXPECT_EQ(first.role(), v1::ROLE_CLIENT);
  ASSERT_EQ(first.drops().size(), 1u);
  EXPECT_EQ(first.drops().at("NO_SOCKET"), 3u);
  EXPECT_EQ(flows[0].pid(), static_cast<uint32_t>(getpid()));
  const v1::FlowStats& second = flows[1].flow_stats();
  EXPECT_EQ(second.packets_out(), 5u);
  EXPECT_EQ(second.retransmits(), 0u);
  EXPECT_EQ(second.drops().size(), 0u);
  // The kernel's losses: counted once, in /metrics and in the first interval's AgentStats.
  const auto stats_events = sink_.Events(v1::Event::kAgentStats);
  ASSERT_EQ(stats_events.size(), 2u);
  EXPECT_EQ(stats_events[0].agent_stats().dropped().at("kernel_ringbuf_full"), 4u);
  EXPECT_EQ(stats_events[1].agent_stats().dropped().count("kernel_ringbuf_full"), 0u);
  EXPECT_NE(Metrics().find("faultline_agent_dropped_total{reason=\"kernel_ringbuf_full\"} 4"),
            std::string::npos);
}

}  // namespace
}  // namespace faultline::agent
