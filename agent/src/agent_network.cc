// TCP connects, resets and per-flow counters to events, the pipeline's own traffic and other
// network namespaces left out, and the kernel side's loss counters (agent_impl.h).
#include "agent_impl.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace faultline::agent {

bool Agent::Impl::Excluded(const uint8_t* addr, uint16_t port) const {
  for (const EndpointFilter& f : opts.excluded_endpoints) {
    if (f.port == port && std::memcmp(f.addr.data(), addr, 16) == 0) return true;
  }
  return false;
}

// Whether a connection is the pipeline's own (either end at an excluded endpoint).
bool Agent::Impl::PipelineOwn(const fl_flow_key& k) const {
  return !opts.excluded_endpoints.empty() && (Excluded(k.laddr, k.lport) || Excluded(k.raddr, k.rport));
}

void Agent::Impl::OnTcp(const fl_tcp_event& t) {
  if (t.self || (t.tgid != 0 && t.tgid == opts.probes.ignore_tgid)) {
    excluded_self->Increment();
    return;
  }
  if (OtherNetns(t.tuple.netns)) {
    excluded_netns->Increment();
    return;
  }
  if (!opts.excluded_endpoints.empty()) {
    fl_flow_key k{};
    std::memcpy(k.laddr, t.tuple.laddr, 16);
    std::memcpy(k.raddr, t.tuple.raddr, 16);
    k.lport = t.tuple.lport, k.rport = t.tuple.rport;
    NormalizeMapped(&k);
    if (PipelineOwn(k)) {
      excluded_pipeline->Increment();
      return;
    }
  }
  v1::Event* e = NewEvent(t.tgid, t.comm, t.cgroup_id, t.ts_ns);
  e->set_time_unix_ns(ToUnix(t.ts_ns));
  SetConnection(t.tuple, e->mutable_connection());
  NameRemote(e->mutable_connection());
  if (t.kind == FL_TCP_CONNECT) {
    auto* c = e->mutable_tcp_connect();
    c->set_result(t.result == FL_CONNECT_ESTABLISHED ? v1::TcpConnect::RESULT_ESTABLISHED
                  : t.result == FL_CONNECT_REFUSED   ? v1::TcpConnect::RESULT_REFUSED
                                                     : v1::TcpConnect::RESULT_FAILED);
    c->set_duration_ns(t.duration_ns);
    CountEvent(kTcpConnect);
  } else {
    auto* r = e->mutable_tcp_reset();
    r->set_direction(t.kind == FL_TCP_RESET_SENT ? v1::TcpReset::DIRECTION_SENT
                                                 : v1::TcpReset::DIRECTION_RECEIVED);
    r->set_tcp_state(t.tcp_state);
    r->set_role(RoleOf(t.role));
    CountEvent(kTcpReset);
  }
}

void Agent::Impl::ReadFlows(uint64_t now) {
  const uint64_t interval = last_flow_read_ns ? now - last_flow_read_ns : 0;
  last_flow_read_ns = now;
  mono_to_unix = static_cast<int64_t>(NowNs(CLOCK_REALTIME)) - static_cast<int64_t>(NowNs(CLOCK_MONOTONIC));
  probes->ReadFlows(&flow_samples, &drop_samples);

  std::unordered_map<std::string, std::map<std::string, uint64_t>> drops_by_flow;
  for (const DropSample& d : drop_samples) {
    const std::string key(reinterpret_cast<const char*>(&d.key), sizeof(d.key));
    uint64_t& prev = drop_prev[key];
    if (d.count > prev) drops_by_flow[FlowKeyBytes(d.key.flow)][probes->DropReasonName(d.key.reason)] += d.count - prev;
    prev = d.count;
  }
  std::vector<fl_flow_key> forget;
  for (const FlowSample& f : flow_samples) {
    const std::string key = FlowKeyBytes(f.key);
    fl_flow_stats& prev = flow_prev[key];
    const fl_flow_stats& cur = f.stats;
    v1::FlowStats fs;
    fs.set_packets_out(CounterDelta(cur.packets_out, prev.packets_out));
    fs.set_bytes_out(CounterDelta(cur.bytes_out, prev.bytes_out));
    fs.set_packets_in(CounterDelta(cur.packets_in, prev.packets_in));
    fs.set_bytes_in(CounterDelta(cur.bytes_in, prev.bytes_in));
    fs.set_retransmits(CounterDelta(cur.retransmits, prev.retransmits));
    auto drops = drops_by_flow.find(key);
    const bool active = fs.packets_out() || fs.packets_in() || fs.retransmits() ||
                        drops != drops_by_flow.end();
    fl_sock_owner owner{};
    const bool owned = active && probes->Owner(f.key, &owner);
    if (active && owned && owner.self) {
      excluded_self->Increment();
    } else if (active && OtherNetns(f.key.netns)) {
      excluded_netns->Increment();
    } else if (active && PipelineOwn(f.key)) {
      excluded_pipeline->Increment();
    } else if (active) {
      fs.set_interval_ns(interval);
      fs.set_srtt_us(cur.srtt_us);
      if (drops != drops_by_flow.end()) fs.mutable_drops()->insert(drops->second.begin(), drops->second.end());
      // The socket's owner names the flow's process (and so its service and container); a flow
      // with none goes out without one and is counted (the stream keeps it per machine).
      if (!owned) flows_unattributed->Increment();
      fs.set_role(owned ? RoleOf(owner.role) : v1::ROLE_UNKNOWN);
      v1::Event* e = owned ? NewEvent(owner.tgid, owner.comm, owner.cgroup_id, now) : NewEvent(0, {}, 0, now);
      e->set_time_unix_ns(ToUnix(now));
      fl_tuple t{};
      std::memcpy(t.laddr, f.key.laddr, 16);
      std::memcpy(t.raddr, f.key.raddr, 16);
      t.lport = f.key.lport;
      t.rport = f.key.rport;
      t.netns = f.key.netns;
      const bool v4 = std::all_of(f.key.laddr + 4, f.key.laddr + 16, [](uint8_t b) { return b == 0; }) &&
                      std::all_of(f.key.raddr + 4, f.key.raddr + 16, [](uint8_t b) { return b == 0; });
      t.family = v4 ? FL_AF_INET : FL_AF_INET6;
      SetConnection(t, e->mutable_connection());
      NameRemote(e->mutable_connection());
      *e->mutable_flow_stats() = std::move(fs);
      CountEvent(kFlowStats);
    }
    prev = cur;
    if (now > cur.last_seen_ns + kFlowForgetNs) {
      forget.push_back(f.key);
      flow_prev.erase(key);
    }
  }
  if (!forget.empty()) probes->ForgetFlows(forget);

  const auto kstats = probes->KernelStats();
  for (int i = 0; i < FL_KSTAT_MAX; ++i) {
    const uint64_t d = kstats[i] - kstats_prev[i];
    if (kKernelStatNames[i]) CountDrop(kKernelStatNames[i], d);
  }
  skipped_other->Increment(kstats[FL_KSTAT_SKIPPED_OTHER] - kstats_prev[FL_KSTAT_SKIPPED_OTHER]);
  kstats_prev = kstats;
  ReportContainerMeta();
  RefreshServiceNames();
  ReportKube();
  unified_cgroups->Tick();
  CountDrop("connection_idle_expired", connections.ExpireIdle(now, std::chrono::nanoseconds(opts.connection_idle).count()));
  connections_gauge->Set(static_cast<double>(connections.size()));

  v1::Event* e = NewEvent(0, {}, 0, now);
  e->set_time_unix_ns(ToUnix(now));
  auto* s = e->mutable_agent_stats();
  s->set_interval_ns(interval);
  for (int k = 0; k < kKinds; ++k) {
    if (kinds[k].interval) (*s->mutable_events())[kKindNames[k]] = kinds[k].interval;
    kinds[k].interval = 0;
  }
  s->mutable_dropped()->insert(interval_dropped.begin(), interval_dropped.end());
  interval_dropped.clear();
}

}  // namespace faultline::agent
