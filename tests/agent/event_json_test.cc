// EventToJson: the line `faultline agent --output jsonl` prints for an event, with the process
// identity of its batch joined in and addresses in text form.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "events.pb.h"
#include "faultline/agent/sinks.h"

namespace faultline::agent {
namespace {

v1::EventBatch Batch() {
  v1::EventBatch b;
  b.mutable_node()->set_name("node-1");
  auto* p = b.add_processes();
  p->set_pid(42);
  p->set_comm("api");
  p->set_cgroup_path("/kubepods/pod-uid/abc");
  p->set_container_id("abc");
  p->set_pod_uid("pod-uid");
  auto* e = b.add_events();
  e->set_time_unix_ns(1'700'000'000'123'456'789);
  e->set_pid(42);
  auto* c = e->mutable_connection();
  c->mutable_local()->set_addr(std::string("\x0a\x00\x00\x01", 4));
  c->mutable_local()->set_port(8080);
  c->mutable_remote()->set_addr(std::string(15, '\0') + "\x01");
  c->mutable_remote()->set_port(51000);
  c->set_netns(4026531833);
  auto* h = e->mutable_http();
  h->set_role(v1::ROLE_SERVER);
  h->set_method("GET");
  h->set_path("/cart");
  h->set_status(503);
  h->set_version("HTTP/1.1");
  h->set_request_bytes(79);
  h->set_response_bytes(982);
  h->set_latency_ns(1'500'000);
  h->set_time_to_first_byte_ns(1'250'000);
  h->set_outcome(v1::HttpExchange::OUTCOME_COMPLETE);
  auto* orphan = b.add_events();  // a pid with no process entry: no identity fields
  orphan->set_time_unix_ns(5);
  orphan->set_pid(7);
  orphan->mutable_tcp_connect()->set_result(v1::TcpConnect::RESULT_REFUSED);
  orphan->mutable_tcp_connect()->set_duration_ns(250'000);
  return b;
}

TEST(EventToJson, AnHttpExchangeWithItsProcessAndAddresses) {
  const v1::EventBatch b = Batch();
  const std::string line = EventToJson(b, 0);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["time_unix_ns"], 1'700'000'000'123'456'789ULL);
  EXPECT_EQ(j["node"], "node-1");
  EXPECT_EQ(j["pid"], 42);
  EXPECT_EQ(j["comm"], "api");
  EXPECT_EQ(j["container_id"], "abc");
  EXPECT_EQ(j["pod_uid"], "pod-uid");
  EXPECT_EQ(j["cgroup"], "/kubepods/pod-uid/abc");
  EXPECT_EQ(j["local"], "10.0.0.1:8080");
  EXPECT_EQ(j["remote"], "[::1]:51000");
  EXPECT_EQ(j["netns"], 4026531833u);
  EXPECT_EQ(j["type"], "http");
  EXPECT_EQ(j["role"], "server");
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["path"], "/cart");
  EXPECT_EQ(j["status"], 503);
  EXPECT_EQ(j["request_bytes"], 79);
  EXPECT_EQ(j["response_bytes"], 982);
  EXPECT_EQ(j["latency_ms"], 1.5);
  EXPECT_EQ(j["ttfb_ms"], 1.25);
  EXPECT_EQ(j["outcome"], "OUTCOME_COMPLETE");
}

TEST(EventToJson, AnEventWhoseProcessIsNotInTheBatchHasNoIdentity) {
  const auto j = nlohmann::json::parse(EventToJson(Batch(), 1));
  EXPECT_EQ(j["pid"], 7);
  EXPECT_FALSE(j.contains("comm"));
  EXPECT_FALSE(j.contains("cgroup"));
  EXPECT_FALSE(j.contains("local"));
  EXPECT_EQ(j["type"], "tcp_connect");
  EXPECT_EQ(j["result"], "RESULT_REFUSED");
  EXPECT_EQ(j["duration_ms"], 0.25);
}

}  // namespace
}  // namespace faultline::agent
