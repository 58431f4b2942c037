// The agent against real HTTP traffic on loopback: a Python server, curl and a pipelining Python
// client. Every assertion is exact: counts, methods, paths, statuses, byte counts; latencies are
// bounded below by the delay the server adds.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>

#include "agent_harness.h"

namespace faultline::testing {
namespace {

const std::string kServer = std::string(FAULTLINE_SOURCE_DIR) + "/tests/integration/http_server.py";
const std::string kPipelined = std::string(FAULTLINE_SOURCE_DIR) + "/tests/integration/pipelined_client.py";

// One agent per way of hooking syscalls (loading the programs is the slow part); each test has
// its own server port and filters on it, and starts from an empty sink. Every test runs with the
// per-syscall tracepoints and with the raw syscall tracepoints.
using Hooks = agent::ProbeOptions::SyscallHooks;
class AgentHttpTest : public ::testing::TestWithParam<Hooks> {
 protected:
  static void TearDownTestSuite() {
    agent_.reset();
    delete sink_ptr_;
    delete metrics_ptr_;
    sink_ptr_ = nullptr;
    metrics_ptr_ = nullptr;
  }

  void SetUp() override {
    FAULTLINE_REQUIRE_KERNEL_OR_SKIP();
    if (agent_ && hooks_ != GetParam()) TearDownTestSuite();
    if (!agent_) {
      metrics_ptr_ = new MetricsRegistry();
      sink_ptr_ = new CollectingSink();
      agent::AgentOptions opts;
      opts.probes.ignore_tgid = getpid();
      opts.probes.syscall_hooks = hooks_ = GetParam();
      auto a = agent::Agent::Start(opts, sink_ptr_, metrics_ptr_);
      FAULTLINE_ASSERT_STARTED(a);
      agent_ = std::move(a).value();
    }
    agent_->Drain();
    sink_ptr_->batches.clear();
    server_ = std::make_unique<Child>(std::vector<std::string>{"python3", kServer});
    port_ = server_->WaitForValue("port", std::chrono::seconds(10));
    ASSERT_FALSE(port_.empty()) << "the test server did not start";
    url_ = "http://127.0.0.1:" + port_;
  }

  // curl fetching every path on one keep-alive connection, with a minimal fixed request.
  void Curl(const std::vector<std::string>& paths, const std::string& extra = "") {
    std::string cmd = "curl -sS --fail-with-body -H 'User-Agent:' -H 'Accept:' " + extra;
    for (const auto& p : paths) cmd += " -o /dev/null " + url_ + p;
    ASSERT_EQ(RunCommand(cmd), 0) << cmd;
  }

  std::string Request(const std::string& path) const {
    return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + port_ + "\r\n\r\n";
  }

  std::vector<v1::HttpExchange> Http(v1::Role role) {
    agent_->Drain();
    const uint32_t port = std::stoi(port_);
    std::vector<v1::HttpExchange> out;
    for (const auto& e : sink_ptr_->Events([](const v1::Event& e) { return e.has_http(); })) {
      const auto& c = e.connection();
      const bool mine = role == v1::ROLE_SERVER ? c.local().port() == port : c.remote().port() == port;
      if (mine && e.http().role() == role) out.push_back(e.http());
    }
    return out;
  }

  static inline MetricsRegistry* metrics_ptr_ = nullptr;
  static inline CollectingSink* sink_ptr_ = nullptr;
  static inline std::unique_ptr<agent::Agent> agent_;
  static inline Hooks hooks_ = Hooks::kTracepoints;
  std::unique_ptr<Child> server_;
  std::string port_, url_;
};

TEST_P(AgentHttpTest, KeepAliveRequestsGiveExactlyOneServerAndOneClientEventEach) {
  constexpr int kN = 5;
  Curl(std::vector<std::string>(kN, "/delay/30?token=secret"));
  const auto server = Http(v1::ROLE_SERVER);
  const auto client = Http(v1::ROLE_CLIENT);
  ASSERT_EQ(server.size(), static_cast<size_t>(kN));
  ASSERT_EQ(client.size(), static_cast<size_t>(kN));
  const uint64_t req_bytes = Request("/delay/30?token=secret").size();
  const uint64_t resp_bytes = std::string("HTTP/1.1 200 X\r\nContent-Length: 2\r\n\r\nok").size();
  for (const auto* side : {&server, &client}) {
    for (const auto& h : *side) {
      EXPECT_EQ(h.method(), "GET");
      EXPECT_EQ(h.path(), "/delay/30");
      EXPECT_EQ(h.status(), 200u);
      EXPECT_EQ(h.version(), "HTTP/1.1");
      EXPECT_EQ(h.request_bytes(), req_bytes);
      EXPECT_EQ(h.response_bytes(), resp_bytes);
      EXPECT_GE(h.latency_ns(), 30'000'000u);
      EXPECT_EQ(h.outcome(), v1::HttpExchange::OUTCOME_COMPLETE);
    }
  }
}

TEST_P(AgentHttpTest, ChunkedAndOneMebibyteResponsesHaveExactSizes) {
  Curl({"/chunked/1000/50", "/bytes/1048576", "/status/503"}, "--no-fail-with-body");
  const auto server = Http(v1::ROLE_SERVER);
  const auto client = Http(v1::ROLE_CLIENT);
  ASSERT_EQ(server.size(), 3u);
  ASSERT_EQ(client.size(), 3u);
  std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 50; ++i) chunked += "3e8\r\n" + std::string(1000, 'c') + "\r\n";
  chunked += "0\r\n\r\n";
  const uint64_t big = std::string("HTTP/1.1 200 X\r\nContent-Length: 1048576\r\n\r\n").size() + 1048576;
  for (const auto* side : {&server, &client}) {
    EXPECT_EQ((*side)[0].path(), "/chunked/1000/50");
    EXPECT_EQ((*side)[0].response_bytes(), chunked.size());
    EXPECT_EQ((*side)[1].path(), "/bytes/1048576");
    EXPECT_EQ((*side)[1].response_bytes(), big);
    EXPECT_EQ((*side)[1].status(), 200u);
    EXPECT_EQ((*side)[2].status(), 503u);
  }
}

TEST_P(AgentHttpTest, HeadersAndBodyInSeparateIovecsKeepExactSizes) {
  // Small enough for one sendmsg to move everything: the kernel captures the header iovec and
  // only the tail of the body iovec; Content-Length and chunked framing must both stay exact.
  Curl({"/iov/30000", "/iovchunked/500/40", "/iov/10"});
  const auto server = Http(v1::ROLE_SERVER);
  const auto client = Http(v1::ROLE_CLIENT);
  ASSERT_EQ(server.size(), 3u);
  ASSERT_EQ(client.size(), 3u);
  std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 40; ++i) chunked += "1f4\r\n" + std::string(500, 'w') + "\r\n";
  chunked += "0\r\n\r\n";
  for (const auto* side : {&server, &client}) {
    EXPECT_EQ((*side)[0].response_bytes(), std::string("HTTP/1.1 200 X\r\nContent-Length: 30000\r\n\r\n").size() + 30000);
    EXPECT_EQ((*side)[1].response_bytes(), chunked.size());
    EXPECT_EQ((*side)[1].outcome(), v1::HttpExchange::OUTCOME_COMPLETE);
    EXPECT_EQ((*side)[2].response_bytes(), std::string("HTTP/1.1 200 X\r\nContent-Length: 10\r\n\r\n").size() + 10);
    EXPECT_EQ((*side)[2].path(), "/iov/10");
  }
}

TEST_P(AgentHttpTest, PostBodiesCountInRequestBytes) {
  Curl({"/echo"}, "--data-binary 0123456789");
  // What curl sends (User-Agent and Accept removed by Curl()), body included.
  const std::string request = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:" + port_ +
                              "\r\nContent-Length: 10\r\nContent-Type: "
                              "application/x-www-form-urlencoded\r\n\r\n0123456789";
  const std::string response = "HTTP/1.1 200 X\r\nContent-Length: 10\r\n\r\n0123456789";
  for (v1::Role role : {v1::ROLE_SERVER, v1::ROLE_CLIENT}) {
    const auto side = Http(role);
    ASSERT_EQ(side.size(), 1u);
    EXPECT_EQ(side[0].method(), "POST");
    EXPECT_EQ(side[0].path(), "/echo");
    EXPECT_EQ(side[0].request_bytes(), request.size());
    EXPECT_EQ(side[0].response_bytes(), response.size());
  }
}

TEST_P(AgentHttpTest, PipelinedRequestsPairInOrder) {
  ASSERT_EQ(RunCommand("python3 " + kPipelined + " 127.0.0.1 " + port_ + " 3"), 0);
  const auto server = Http(v1::ROLE_SERVER);
  const auto client = Http(v1::ROLE_CLIENT);
  ASSERT_EQ(server.size(), 3u);
  ASSERT_EQ(client.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(server[i].path(), "/status/" + std::to_string(200 + i));
    EXPECT_EQ(server[i].status(), 200u + i);
    EXPECT_EQ(client[i].status(), 200u + i);
  }
}

TEST_P(AgentHttpTest, RefusedConnectIsReportedAsRefused) {
  // A port that was just free: bind, read it, close.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  const uint32_t port = ntohs(a.sin_port);
  EXPECT_NE(RunCommand("curl -sS -o /dev/null http://127.0.0.1:" + std::to_string(port) + "/ 2>/dev/null"), 0);
  agent_->Drain();
  auto refused = sink_ptr_->Events([&](const v1::Event& e) {
    return e.has_tcp_connect() && e.connection().remote().port() == port;
  });
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].tcp_connect().result(), v1::TcpConnect::RESULT_REFUSED);
  EXPECT_NE(refused[0].pid(), 0u);
  auto resets = sink_ptr_->Events([&](const v1::Event& e) {
    return e.has_tcp_reset() && e.tcp_reset().direction() == v1::TcpReset::DIRECTION_RECEIVED &&
           e.connection().remote().port() == port;
  });
  EXPECT_EQ(resets.size(), 1u);
}

TEST_P(AgentHttpTest, ProcessIdentityTravelsWithTheBatch) {
  // The server moves into a cgroup of this test's own before it serves anything, so that the
  // exact path its identity must carry is known: the unified hierarchy's when there is one (the
  // path the agent prefers), else the memory controller's.
  std::string root, line;
  std::ifstream mounts("/proc/mounts");
  while (std::getline(mounts, line)) {
    std::istringstream f(line);
    std::string dev, dir, type, opts;
    f >> dev >> dir >> type >> opts;
    if (type == "cgroup2") root = dir;
    if (root.empty() && type == "cgroup" && ("," + opts + ",").find(",memory,") != std::string::npos)
      root = dir;
  }
  ASSERT_FALSE(root.empty()) << "no cgroup hierarchy to put the server in";
  const std::string name = "fl-http-test-" + std::to_string(getpid());
  ASSERT_EQ(mkdir((root + "/" + name).c_str(), 0755), 0) << root << "/" << name;
  struct Remove {  // the cgroup goes once its only process has, whatever the test's outcome
    std::unique_ptr<Child>* server;
    std::string dir;
    ~Remove() {
      server->reset();
      if (!dir.empty()) rmdir(dir.c_str());
    }
  } remove_later{&server_, ""};
  { std::ofstream(root + "/" + name + "/cgroup.procs") << server_->pid() << "\n"; }
  remove_later.dir = root + "/" + name;
  Curl({"/status/200"});
  const auto server = Http(v1::ROLE_SERVER);
  ASSERT_EQ(server.size(), 1u);
  bool found = false;
  for (const auto& b : sink_ptr_->batches)
    for (const auto& p : b.processes())
      if (p.pid() == static_cast<uint32_t>(server_->pid())) {
        found = true;
        EXPECT_EQ(p.comm(), "python3");
        EXPECT_EQ(p.cgroup_path(), "/" + name);
      }
  EXPECT_TRUE(found);
}

}  // namespace
INSTANTIATE_TEST_SUITE_P(Hooks, AgentHttpTest,
                         ::testing::Values(Hooks::kTracepoints, Hooks::kRaw),
                         [](const ::testing::TestParamInfo<Hooks>& info) {
                           return info.param == Hooks::kRaw ? "RawSyscalls" : "Tracepoints";
                         });

}  // namespace faultline::testing
