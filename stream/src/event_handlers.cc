// One handler per kind of event: what it adds to which series of its window (event_scope.h).
#include <arpa/inet.h>

#include <cmath>

#include "event_scope.h"
#include "faultline/stream/entity_namer.h"

namespace faultline::stream {
namespace {

// A power-of-two histogram (bucket i: [2^i, 2^(i+1)) ns) into a sketch: each bucket's count at its
// geometric middle, so the sketch's quantiles are within the bucket (a factor of sqrt 2).
void AddLog2Histogram(const v1::Log2Histogram& h, model::LatencySketch* out) {
  for (int i = 0; i < h.buckets_size() && i < 64; ++i) {
    if (h.buckets(i) == 0) continue;
    out->Add(std::ldexp(1.4142135623730951, i), h.buckets(i));
  }
}

// Appends "a.b.c.d:port" ("[v6]:port" for IPv6 not mapped from IPv4) to `out`.
void AppendAddress(const v1::Endpoint& e, std::string* out) {
  const std::string& a = e.addr();
  const bool v4 = a.size() == 4;
  const bool mapped =
      a.size() == 16 && a.compare(0, 12, std::string_view("\0\0\0\0\0\0\0\0\0\0\xff\xff", 12)) == 0;
  if (v4 || mapped) {
    const char* b = a.data() + (v4 ? 0 : 12);
    for (int i = 0; i < 4; ++i) {
      if (i) out->push_back('.');
      const unsigned v = static_cast<uint8_t>(b[i]);
      if (v >= 100) out->push_back(static_cast<char>('0' + v / 100));
      if (v >= 10) out->push_back(static_cast<char>('0' + v / 10 % 10));
      out->push_back(static_cast<char>('0' + v % 10));
    }
  } else if (a.size() == 16) {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, a.data(), buf, sizeof(buf));
    out->push_back('[');
    out->append(buf);
    out->push_back(']');
  } else {
    out->push_back('?');
  }
  out->push_back(':');
  char digits[8];
  int n = 0;
  for (unsigned port = e.port() & 0xffff; n == 0 || port; port /= 10)
    digits[n++] = static_cast<char>('0' + port % 10);
  while (n) out->push_back(digits[--n]);
}

// Appends one dimension to an encoded series key (model::SeriesKey::Encode's layout; callers add
// the dimensions in name order).
void PutDim(std::string* key, std::string_view name, std::string_view value) {
  PutBytes(key, name);
  PutBytes(key, value);
}

using Scope = PartitionState::EventScope;

// An HTTP exchange: the server's side counts on its service (by endpoint) and its listener, the
// client's side on the call edge (by endpoint).
void ApplyHttp(Scope& e) {
  EventScratch& x = e.scratch;
  const v1::HttpExchange& h = e.ev.http();
  const bool server = h.role() == v1::ROLE_SERVER;
  x.endpoint.clear();
  EntityNamer::AppendEndpoint(h.method(), h.path(), &x.endpoint);
  model::WindowStats* s = nullptr;
  if (server) {
    e.BeginSig(Shape::kServerHttp);
    PutEndpoint(&x.sig, e.conn().local());
    x.sig.append(x.endpoint);
    const SigTarget& t = e.Cached([&] {
      e.LearnListener();
      // Endpoints are capped per service.
      const std::string_view counted = e.EndpointFor(e.who.service, x.endpoint);
      SigTarget target;
      target.folded = counted != x.endpoint;
      x.key.assign(1, static_cast<char>(EntityKind::kListener));
      PutDim(&x.key, dim::kAddress, e.LocalText());
      PutDim(&x.key, dim::kMachine, e.machine);
      PutDim(&x.key, dim::kService, e.who.service);
      target.listener = e.windows().Intern(x.key);
      x.key.assign(1, static_cast<char>(EntityKind::kService));
      // The cgroup the instance runs in: the topology's instance -> container link.
      if (!e.who.container.empty()) PutDim(&x.key, dim::kContainer, e.who.container);
      PutDim(&x.key, dim::kEndpoint, counted);
      PutDim(&x.key, dim::kInstance, e.who.instance);
      PutDim(&x.key, dim::kMachine, e.machine);
      PutDim(&x.key, dim::kService, e.who.service);
      target.series = e.windows().Intern(x.key);
      return target;
    });
    e.windows().At(e.start_s, t.listener)->requests++;
    s = e.windows().At(e.start_s, t.series);
  } else {
    e.RememberCaller();
    e.BeginSig(Shape::kClientHttp);
    PutEndpoint(&x.sig, e.conn().remote());
    PutBytes(&x.sig, e.conn().remote().name());
    x.sig.append(x.endpoint);
    s = e.windows().At(e.start_s, e.Cached([&] {
      // Endpoints are capped per caller->callee pair on the client side.
      x.probe.assign(e.who.service).append("->").append(e.Callee());
      const std::string_view counted = e.EndpointFor(x.probe, x.endpoint);
      SigTarget target;
      target.folded = counted != x.endpoint;
      x.key.assign(1, static_cast<char>(EntityKind::kEdge));
      PutDim(&x.key, dim::kCallee, e.Callee());
      PutDim(&x.key, dim::kCaller, e.who.service);
      PutDim(&x.key, dim::kEndpoint, counted);
      PutDim(&x.key, dim::kInstance, e.who.instance);
      PutDim(&x.key, dim::kMachine, e.machine);
      PutDim(&x.key, dim::kSide, dim::kClientSide);
      target.series = e.windows().Intern(x.key);
      return target;
    }).series);
  }
  s->requests++;
  if (h.status() >= 400 && h.status() < 500) s->status_4xx++;
  if (h.status() >= 500 && h.status() < 600) s->status_5xx++;
  if (h.outcome() == v1::HttpExchange::OUTCOME_COMPLETE) {
    s->latency_ns.Add(static_cast<double>(h.latency_ns()));
  } else {
    s->incomplete++;
  }
}

void ApplyTcpConnect(Scope& e) {
  model::WindowStats* s = e.ClientEdge();
  const auto& c = e.ev.tcp_connect();
  if (c.result() == v1::TcpConnect::RESULT_ESTABLISHED) {
    s->connects_ok++;
    s->connect_ns.Add(static_cast<double>(c.duration_ns()));
  } else if (c.result() == v1::TcpConnect::RESULT_REFUSED) {
    s->connects_refused++;
  } else {
    s->connects_failed++;
  }
}

void ApplyTcpReset(Scope& e) {
  if (!e.owned()) e.counters->unattributed++;
  model::WindowStats* s =
      e.owned() ? e.EdgeSeries(e.SideOf(e.ev.tcp_reset().role())) : e.MachineSeries();
  (e.ev.tcp_reset().direction() == v1::TcpReset::DIRECTION_SENT ? s->resets_sent
                                                                : s->resets_received)++;
}

void ApplyFlowStats(Scope& e) {
  const auto& f = e.ev.flow_stats();
  if (!e.owned()) e.counters->unattributed++;
  model::WindowStats* s = e.owned() ? e.EdgeSeries(e.SideOf(f.role())) : e.MachineSeries();
  s->packets_out += f.packets_out(), s->bytes_out += f.bytes_out();
  s->packets_in += f.packets_in(), s->bytes_in += f.bytes_in();
  s->retransmits += f.retransmits();
  for (const auto& [reason, n] : f.drops()) s->drops[reason] += n;
  if (f.srtt_us()) s->rtt_samples++, s->rtt_us_sum += f.srtt_us();
}

void ApplyAgentStats(Scope& e) {
  model::WindowStats* s = e.MachineSeries();
  for (const auto& [reason, n] : e.ev.agent_stats().dropped()) s->agent_dropped += n;
}

void AddBlockIo(const google::protobuf::RepeatedPtrField<v1::BlockIo>& devices,
                model::WindowStats* s) {
  for (const auto& b : devices) {
    s->io_read_bytes += b.read_bytes(), s->io_write_bytes += b.write_bytes();
    s->io_ops += b.latency().count();
    AddLog2Histogram(b.latency(), &s->io_ns);
  }
}

void ApplyCgroupResources(Scope& e) {
  const auto& c = e.ev.cgroup_resources();
  const std::string name = ContainerName(e.machine, c.cgroup_path(), c.container_id(),
                                         c.has_container() ? &c.container() : nullptr);
  if (name.empty()) return;  // the root cgroup: the machine's own figures say it
  std::string& key = e.scratch.key;
  key.assign(1, static_cast<char>(EntityKind::kContainer));
  PutDim(&key, dim::kContainer, name);
  PutDim(&key, dim::kMachine, e.machine);
  model::WindowStats* s = e.Series(key);
  s->resource_samples++;
  s->cpu_usage_ns += c.cpu_usage_ns();
  s->cpu_periods += c.cpu_periods(), s->cpu_throttled_periods += c.cpu_throttled_periods();
  s->cpu_throttled_ns += c.cpu_throttled_ns();
  AddLog2Histogram(c.runq_latency(), &s->runq_ns);
  s->memory_working_set_sum += c.memory_working_set_bytes();
  if (c.memory_limit_bytes() > 0) {
    s->memory_limited_samples++;
    s->memory_usage_ratio_sum += static_cast<double>(c.memory_working_set_bytes()) /
                                 static_cast<double>(c.memory_limit_bytes());
  }
  s->major_faults += c.major_page_faults();
  s->oom_kills += c.oom_kills();
  AddBlockIo(c.block_io(), s);
}

void ApplyOomKill(Scope& e) { e.MachineSeries()->oom_kills++; }

void ApplyMachineResources(Scope& e) {
  model::WindowStats* s = e.MachineSeries();
  const auto& m = e.ev.machine_resources();
  s->resource_samples++;
  s->cpu_busy_ns += m.cpu_busy_ns(), s->cpu_total_ns += m.cpu_total_ns();
  AddLog2Histogram(m.runq_latency(), &s->runq_ns);
  s->major_faults += m.major_page_faults();
  s->memory_available_sum += m.memory_available_bytes();
  AddBlockIo(m.block_io(), s);
}

}  // namespace

const std::string& PartitionState::EventScope::LocalText() {
  if (!have_local) scratch.local.clear(), AppendAddress(conn().local(), &scratch.local), have_local = true;
  return scratch.local;
}

const std::string& PartitionState::EventScope::RemoteText() {
  if (!have_remote)
    scratch.remote.clear(), AppendAddress(conn().remote(), &scratch.remote), have_remote = true;
  return scratch.remote;
}

std::string_view PartitionState::EventScope::Callee() {
  return conn().remote().name().empty() ? std::string_view(RemoteText())
                                        : std::string_view(conn().remote().name());
}

std::string_view PartitionState::EventScope::OnMachine(std::string* buf, const std::string& end) {
  buf->assign(machine).push_back('|');
  buf->append(end);
  return std::string_view(*buf);
}

void PartitionState::EventScope::RememberCaller() {
  counters->peers_evicted += p.peers_->Remember(PeerProbe(LocalText()), who.service, start_s);
}

void PartitionState::EventScope::BeginSig(Shape shape) {
  scratch.sig.assign(1, static_cast<char>(shape));
  PutU32(&scratch.sig, who.who);
}

model::WindowStats* PartitionState::EventScope::ClientEdge() {
  RememberCaller();
  BeginSig(Shape::kClientEdge);
  PutEndpoint(&scratch.sig, conn().remote());
  PutBytes(&scratch.sig, conn().remote().name());
  return p.open_->At(start_s, Cached([&] {
    std::string& key = scratch.key;
    key.assign(1, static_cast<char>(EntityKind::kEdge));
    PutDim(&key, dim::kCallee, Callee());
    PutDim(&key, dim::kCaller, who.service);
    PutDim(&key, dim::kInstance, who.instance);
    PutDim(&key, dim::kMachine, machine);
    PutDim(&key, dim::kSide, dim::kClientSide);
    return SigTarget{p.open_->Intern(key), 0, false};
  }).series);
}

model::WindowStats* PartitionState::EventScope::ServerEdge() {
  std::string& key = scratch.key;
  key.assign(1, static_cast<char>(EntityKind::kEdge));
  PutDim(&key, dim::kCallee, who.service);
  const std::string* peer = p.peers_->Find(PeerProbe(RemoteText()));
  const std::string& remote = scratch.remote;
  PutDim(&key, dim::kCaller, peer ? std::string_view(*peer)
                                  : std::string_view(remote).substr(0, remote.rfind(':')));
  PutDim(&key, dim::kInstance, who.instance);
  PutDim(&key, dim::kMachine, machine);
  PutDim(&key, dim::kSide, dim::kServerSide);
  return p.Series(start_s, key);
}

bool PartitionState::EventScope::ServerSide() {
  if (p.learned_->HasListener(ListenerProbe())) return true;
  if (p.learned_->HasListener(OnMachine(&scratch.probe, RemoteText()))) return false;
  return conn().local().port() < conn().remote().port();
}

model::WindowStats* PartitionState::EventScope::MachineSeries() {
  BeginSig(Shape::kMachine);
  return p.open_->At(start_s, Cached([&] {
    std::string& key = scratch.key;
    key.assign(1, static_cast<char>(EntityKind::kMachine));
    PutDim(&key, dim::kMachine, machine);
    return SigTarget{p.open_->Intern(key), 0, false};
  }).series);
}

EventHandler HandlerFor(v1::Event::KindCase kind) {
  switch (kind) {
    case v1::Event::kHttp: return ApplyHttp;
    case v1::Event::kTcpConnect: return ApplyTcpConnect;
    case v1::Event::kTcpReset: return ApplyTcpReset;
    case v1::Event::kFlowStats: return ApplyFlowStats;
    case v1::Event::kAgentStats: return ApplyAgentStats;
    case v1::Event::kCgroupResources: return ApplyCgroupResources;
    case v1::Event::kOomKill: return ApplyOomKill;
    case v1::Event::kMachineResources: return ApplyMachineResources;
    default: return nullptr;
  }
}

}  // namespace faultline::stream
