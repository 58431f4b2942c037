#include "faultline/stream/partition_state.h"

#include <arpa/inet.h>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include <google/protobuf/arena.h>

#include "events.pb.h"
#include "open_windows.h"
#include "partition_store.h"
#include "peer_table.h"
#include "varint.h"

namespace faultline::stream {
namespace {

constexpr int64_t kNsPerS = 1'000'000'000;

// A power-of-two histogram (bucket i: [2^i, 2^(i+1)) ns) into a sketch: each bucket's count at its
// geometric middle, so the sketch's quantiles are within the bucket (a factor of sqrt 2).
void AddLog2Histogram(const v1::Log2Histogram& h, LatencySketch* out) {
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

// A changelog record's parts: `parts` in order, the last one marked (one empty part for none).
std::vector<ChangelogRecord> Records(ChangelogKind kind, uint64_t epoch, uint64_t chain,
                                     uint64_t seq, const std::vector<std::string_view>& parts) {
  std::vector<ChangelogRecord> records;
  records.reserve(std::max<size_t>(1, parts.size()));
  for (size_t i = 0; i < parts.size(); ++i)
    records.push_back({kind, chain, seq, i, i + 1 == parts.size(), parts[i], epoch});
  if (parts.empty()) records.push_back({kind, chain, seq, 0, true, {}, epoch});
  return records;
}
// `bytes` cut into pieces of at most `size`.
std::vector<std::string_view> Parts(std::string_view bytes, size_t size) {
  std::vector<std::string_view> parts;
  for (size_t at = 0; at < bytes.size(); at += size) parts.push_back(bytes.substr(at, size));
  return parts;
}

// Appends one dimension to an encoded series key (SeriesKey::Encode's layout; callers add the
// dimensions in name order).
void PutDim(std::string* key, std::string_view name, std::string_view value) {
  PutBytes(key, name);
  PutBytes(key, value);
}

}  // namespace

// A commit between BeginCommit and FinishCommit: its batch, its retention cutoff, and its
// delivery to the changelog (none without one).
struct PartitionState::Committing {
  PartitionStore::Batch batch;
  int64_t cutoff = 0;
  std::unique_ptr<ChangelogLink::Delivery> delivery;
};

struct PartitionState::Learned {
  absl::flat_hash_set<std::string> endpoints;                  // "owner\0endpoint"
  absl::flat_hash_map<std::string, size_t> endpoint_counts;    // by owner
  absl::flat_hash_map<std::string, std::string> listeners;     // "machine|ip:port" -> service
  static absl::string_view View(std::string_view s) { return {s.data(), s.size()}; }
  bool HasListener(std::string_view key) const { return listeners.contains(View(key)); }
};

PartitionState::PartitionState()
    : open_(std::make_unique<OpenWindows>()),
      sigs_(std::make_unique<SigCache>()),
      learned_(std::make_unique<Learned>()) {}
PartitionState::~PartitionState() = default;

Result<std::unique_ptr<PartitionState>> PartitionState::Open(
    const std::string& state_dir, const std::string& topic, int32_t partition,
    const WindowOptions& options, const EntityNamer& namer, std::shared_ptr<rocksdb::Cache> cache,
    const ChangelogOptions& changelog) {
  std::unique_ptr<PartitionState> p(new PartitionState());
  p->partition_ = partition;
  p->options_ = options;
  p->namer_ = &namer;
  p->changelog_ = changelog;
  const std::string name = topic + "-" + std::to_string(partition);
  StoredState stored;
  const auto t0 = std::chrono::steady_clock::now();
  ChangelogChain chain;
  if (changelog.link) {
    // Read before the database is opened: the changelog is written first, so whatever it holds
    // now is at least what the previous owner's database holds, unless that owner still commits
    // (then the database is ahead, and kept).
    ChangelogReplay replay(name);
    FAULTLINE_RETURN_IF_ERROR(changelog.link->Read(
        partition, [&](int64_t at, std::string_view value) { return replay.Add(at, value); }));
    chain = replay.Finish();
  }
  RestoreReport report;
  FAULTLINE_ASSIGN_OR_RETURN(
      p->store_, PartitionStore::Open(state_dir + "/" + name, options.window_s, std::move(cache),
                                      &stored, changelog.link ? &chain : nullptr, &report));
  if (changelog.link) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ChangelogCounters& c = p->changelog_counters_;
    c.restore_seconds += secs;
    ChangelogOpen& o = p->changelog_open_;
    const char* source = "local";
    if (report.source != RestoreReport::Source::kLocal) {
      c.restores++;
      c.restored_bytes += report.applied_bytes;
      const bool rebuilt = report.source == RestoreReport::Source::kRebuilt;
      source = rebuilt ? "rebuilt" : "caught up";
      o.source = rebuilt ? ChangelogOpen::Source::kRebuilt : ChangelogOpen::Source::kCaughtUp;
    }
    c.fenced += chain.fenced;
    p->snapshot_due_ = !report.continues_chain;
    FAULTLINE_RETURN_IF_ERROR(p->Claim(chain.max_epoch));
    o.from_seq = report.base_seq, o.deltas = report.deltas, o.seq = report.seq;
    o.epoch = p->epoch_, o.chain = p->chain_;
    p->restore_summary_ =
        std::string(source) + " from seq " + std::to_string(report.local_seq) + " to " +
        std::to_string(report.seq) + " (" + std::to_string(report.applied_bytes) +
        " bytes applied; the changelog had " + std::to_string(chain.records) + " records, " +
        std::to_string(chain.bytes) + " bytes, " + std::to_string(chain.ignored) + " ignored, " +
        std::to_string(chain.fenced) + " fenced) in " +
        std::to_string(static_cast<int64_t>(secs * 1000)) + " ms; claimed epoch " +
        std::to_string(p->epoch_);
  }
  p->next_offset_ = stored.next_offset;
  p->max_event_ns_ = stored.max_event_ns;
  for (auto& w : stored.open) p->open_->Restore(w.start_s, w.key, std::move(w.stats));
  for (auto& w : stored.outbox)
    p->outbox_[{w.start_s, std::move(w.key)}] = OutboxEntry{std::move(w.stats), false};
  for (const auto& [owner, endpoint] : stored.endpoints) {
    std::string k = owner;
    k.push_back('\0');
    k.append(endpoint);
    if (p->learned_->endpoints.insert(std::move(k)).second) p->learned_->endpoint_counts[owner]++;
  }
  for (auto& [address, service] : stored.listeners)
    p->learned_->listeners[address] = std::move(service);
  p->peers_ = std::make_unique<PeerTable>(options.max_peers);
  for (const auto& peer : stored.peers) {
    if (!p->peers_->Restore(stored.peer_front, peer.index, peer.key, peer.service, peer.seen_s))
      return Internal("partition state " + state_dir + "/" + topic + "-" +
                      std::to_string(partition) + ": peer record " + std::to_string(peer.index) +
                      " is out of sequence");
  }
  p->peers_committed_ = p->peers_->end();
  return p;
}

std::vector<PartitionState::Opened> PartitionState::OpenAll(
    const std::vector<int32_t>& partitions,
    const std::function<Result<std::unique_ptr<PartitionState>>(int32_t)>& open,
    size_t threads) {
  std::vector<Opened> out;
  out.reserve(partitions.size());
  for (size_t i = 0; i < partitions.size(); ++i)
    out.push_back({Internal("partition " + std::to_string(partitions[i]) + ": not opened"), 0});
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, partitions.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < partitions.size();) {
      const auto t0 = std::chrono::steady_clock::now();
      out[i].state = open(partitions[i]);
      out[i].open_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  return out;
}

int64_t PartitionState::watermark_s() const {
  return max_event_ns_ / kNsPerS - options_.allowed_lateness_s;
}

size_t PartitionState::open_series() const { return open_->size(); }

uint64_t PartitionState::ApproximateBytes() const { return store_->ApproximateBytes(); }

WindowStats* PartitionState::Series(int64_t window_start_s, std::string_view encoded_key) {
  return open_->At(window_start_s, open_->Intern(encoded_key));
}

std::string_view PartitionState::EndpointFor(std::string_view owner, std::string_view endpoint) {
  std::string& key = endpoint_probe_;
  key.assign(owner).push_back('\0');
  key.append(endpoint);
  if (learned_->endpoints.contains(Learned::View(key))) return endpoint;
  size_t& count = learned_->endpoint_counts[Learned::View(owner)];
  if (count >= options_.max_endpoints_per_service) return "other";
  count++;
  learned_->endpoints.insert(key);
  new_endpoints_.emplace_back(owner, endpoint);
  return endpoint;
}

namespace {

// What a series signature stands for: the series an event of that shape updates (and, for a
// server-side exchange, its listener series), and whether its endpoint was folded into "other".
struct SigTarget {
  uint32_t series = 0;
  uint32_t listener = 0;
  bool folded = false;
};

// Signature shapes: which fields of an event decide its series.
enum class Shape : char { kServerHttp = 1, kClientHttp = 2, kClientEdge = 3, kMachine = 4 };

void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }
// An address as raw bytes, length first, then its port.
void PutEndpoint(std::string* out, const v1::Endpoint& e) {
  out->push_back(static_cast<char>(e.addr().size()));
  out->append(e.addr());
  PutU32(out, e.port());
}

}  // namespace

struct PartitionState::SigCache {
  // Signature -> target: an event whose signature was seen before skips naming, formatting and
  // key building. Every value depends only on the signature and on state that never changes
  // once set (endpoints registered, listeners registered, names interned in `who`), so a hit
  // gives exactly what the full path would. Cleared when series ids are renumbered, and when it
  // grows past kMaxSignatures (a cache: nothing is lost).
  absl::flat_hash_map<std::string, SigTarget> targets;
  // (machine, service, instance, container) -> a small id, for signatures.
  absl::flat_hash_map<std::string, uint32_t> who;
  static constexpr size_t kMaxSignatures = 1 << 20;
  void Clear() {
    targets.clear();
    who.clear();
  }
};

void PartitionState::Apply(std::string_view payload, int64_t offset, int64_t message_time_ms,
                           ApplyCounters* counters) {
  counters->messages++;
  next_offset_ = offset + 1;
  meta_dirty_ = true;
  // The batch lives in an arena over a reused block: no malloc per field, one release per batch.
  if (arena_block_.empty()) arena_block_.resize(256 << 10);
  google::protobuf::ArenaOptions arena_options;
  arena_options.initial_block = arena_block_.data();
  arena_options.initial_block_size = arena_block_.size();
  google::protobuf::Arena arena(arena_options);
  v1::EventBatch& batch = *google::protobuf::Arena::CreateMessage<v1::EventBatch>(&arena);
  if (!batch.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    counters->undecodable++;
    return;
  }
  if (sigs_->targets.size() > SigCache::kMaxSignatures || sigs_->who.size() > SigCache::kMaxSignatures)
    sigs_->Clear();
  const std::string& machine = batch.node().name();
  // Service and instance names, once per process of the batch.
  struct Names {
    uint32_t pid;
    std::string service, instance, container;
    uint32_t who;  // the four names' id in the signature cache
  };
  std::vector<Names> names;
  names.reserve(static_cast<size_t>(batch.processes_size()) + 1);
  auto names_of = [&](uint32_t pid) -> const Names& {
    for (const Names& n : names) {
      if (n.pid == pid) return n;
    }
    const v1::ProcessIdentity* proc = nullptr;
    for (const auto& p : batch.processes()) {
      if (p.pid() == pid) proc = &p;
    }
    Names& n = names.emplace_back(
        Names{pid, namer_->Service(proc, pid, machine), namer_->Instance(proc, pid, machine),
              proc ? ContainerName(machine, proc->cgroup_path(), proc->container_id(),
                                   proc->has_container() ? &proc->container() : nullptr)
                   : std::string(),
              0});
    std::string who_key = machine;
    for (const std::string* part : {&n.service, &n.instance, &n.container}) {
      who_key.push_back('\0');
      who_key.append(*part);
    }
    n.who = sigs_->who.try_emplace(std::move(who_key), static_cast<uint32_t>(sigs_->who.size()))
                .first->second;
    return n;
  };
  const int64_t window_ns = options_.window_s * kNsPerS;
  const int64_t lateness_ns = options_.allowed_lateness_s * kNsPerS;
  std::string local, remote, key, probe, endpoint, peer_key, sig;
  for (const v1::Event& ev : batch.events()) {
    counters->events++;
    const int64_t t_ns = static_cast<int64_t>(std::min<uint64_t>(ev.time_unix_ns(), INT64_MAX / 2));
    if (message_time_ms >= 0 && t_ns / 1'000'000 > message_time_ms + options_.max_future_s * 1000) {
      counters->future++;
      continue;
    }
    const int64_t start_ns = t_ns - t_ns % window_ns;
    if (start_ns + window_ns <= max_event_ns_ - lateness_ns) {
      counters->late++;
      continue;
    }
    max_event_ns_ = std::max(max_event_ns_, t_ns);
    const int64_t start_s = start_ns / kNsPerS;
    const Names& who = names_of(ev.pid());
    const v1::Connection& conn = ev.connection();
    // The connection's ends as text, formatted only when a path needs them.
    bool have_local = false, have_remote = false;
    auto local_text = [&]() -> const std::string& {
      if (!have_local) local.clear(), AppendAddress(conn.local(), &local), have_local = true;
      return local;
    };
    auto remote_text = [&]() -> const std::string& {
      if (!have_remote) remote.clear(), AppendAddress(conn.remote(), &remote), have_remote = true;
      return remote;
    };
    // The callee of a call: the Kubernetes entity the agent named the address with (a Service's
    // ClusterIP: "{namespace}/{service}"), else the address, which the listener records resolve.
    auto callee = [&] {
      return conn.remote().name().empty() ? std::string_view(remote_text())
                                          : std::string_view(conn.remote().name());
    };
    // "machine|ip:port": an end of a connection on this node, as listeners and peers are keyed.
    auto on_machine = [&](std::string* buf, const std::string& end) {
      buf->assign(machine).push_back('|');
      buf->append(end);
      return std::string_view(*buf);
    };
    auto listener_probe = [&] { return on_machine(&probe, local_text()); };
    // The client end of this connection, as the caller's side registers it and the callee's
    // side looks it up (same node: same agent, same partition).
    auto peer_probe = [&](const std::string& end) { return on_machine(&peer_key, end); };
    auto remember_caller = [&] {
      counters->peers_evicted += peers_->Remember(peer_probe(local_text()), who.service, start_s);
    };
    // The target of this event's signature (`sig`), computed by `miss` on first sight.
    auto cached = [&](auto&& miss) -> const SigTarget& {
      auto it = sigs_->targets.find(absl::string_view(sig.data(), sig.size()));
      if (it == sigs_->targets.end()) it = sigs_->targets.emplace(sig, miss()).first;
      counters->endpoints_folded += it->second.folded;
      return it->second;
    };
    auto begin_sig = [&](Shape shape) {
      sig.assign(1, static_cast<char>(shape));
      PutU32(&sig, who.who);
    };
    // A client-side edge (no endpoint): connects, and flows and resets on the caller's side.
    auto client_edge = [&] {
      remember_caller();
      begin_sig(Shape::kClientEdge);
      PutEndpoint(&sig, conn.remote());
      PutBytes(&sig, conn.remote().name());
      return open_->At(start_s, cached([&] {
        key.assign(1, static_cast<char>(EntityKind::kEdge));
        PutDim(&key, "callee", callee());
        PutDim(&key, "caller", who.service);
        PutDim(&key, "instance", who.instance);
        PutDim(&key, "machine", machine);
        PutDim(&key, "side", "client");
        return SigTarget{open_->Intern(key), 0, false};
      }).series);
    };
    // A server-side edge: the caller by name when its own side was seen on this node, else by
    // address. Not cached: the peer records change with every new connection.
    auto server_edge = [&] {
      key.assign(1, static_cast<char>(EntityKind::kEdge));
      PutDim(&key, "callee", who.service);
      const std::string* peer = peers_->Find(peer_probe(remote_text()));
      PutDim(&key, "caller", peer ? std::string_view(*peer)
                                  : std::string_view(remote).substr(0, remote.rfind(':')));
      PutDim(&key, "instance", who.instance);
      PutDim(&key, "machine", machine);
      PutDim(&key, "side", "server");
      return Series(start_s, key);
    };
    // Which end of a connection is the server, for network events (they carry no role): the end
    // that served HTTP here before (a known listener), else the end with the lower port (servers
    // mostly listen below the ephemeral range, and clients' ports come from it).
    auto server_side = [&] {
      if (learned_->HasListener(listener_probe())) return true;
      if (learned_->HasListener(on_machine(&probe, remote_text()))) return false;
      return conn.local().port() < conn.remote().port();
    };

    // The side of a flow or reset: its socket's owner record says (connected: client, accepted:
    // server); without one, the listener records and the port heuristic decide.
    auto side_of = [&](v1::Role role) {
      return role == v1::ROLE_SERVER ? true : role == v1::ROLE_CLIENT ? false : server_side();
    };
    auto edge_series = [&](bool server) { return server ? server_edge() : client_edge(); };
    // Network events with no owning process belong to no service: the machine keeps them (its
    // interface-level figures), counted as unattributed.
    auto machine_series = [&] {
      begin_sig(Shape::kMachine);
      return open_->At(start_s, cached([&] {
        key.assign(1, static_cast<char>(EntityKind::kMachine));
        PutDim(&key, "machine", machine);
        return SigTarget{open_->Intern(key), 0, false};
      }).series);
    };
    const bool owned = ev.pid() != 0;

    switch (ev.kind_case()) {
      case v1::Event::kHttp: {
        const v1::HttpExchange& h = ev.http();
        const bool server = h.role() == v1::ROLE_SERVER;
        endpoint.clear();
        EntityNamer::AppendEndpoint(h.method(), h.path(), &endpoint);
        WindowStats* s = nullptr;
        if (server) {
          begin_sig(Shape::kServerHttp);
          PutEndpoint(&sig, conn.local());
          sig.append(endpoint);
          const SigTarget& t = cached([&] {
            if (!learned_->HasListener(listener_probe())) {
              learned_->listeners.emplace(probe, who.service);
              new_listeners_.emplace_back(probe, who.service);
            }
            // Endpoints are capped per service.
            const std::string_view counted = EndpointFor(who.service, endpoint);
            SigTarget target;
            target.folded = counted != endpoint;
            key.assign(1, static_cast<char>(EntityKind::kListener));
            PutDim(&key, "address", local_text());
            PutDim(&key, "machine", machine);
            PutDim(&key, "service", who.service);
            target.listener = open_->Intern(key);
            key.assign(1, static_cast<char>(EntityKind::kService));
            // The cgroup the instance runs in: the topology's instance -> container link.
            if (!who.container.empty()) PutDim(&key, "container", who.container);
            PutDim(&key, "endpoint", counted);
            PutDim(&key, "instance", who.instance);
            PutDim(&key, "machine", machine);
            PutDim(&key, "service", who.service);
            target.series = open_->Intern(key);
            return target;
          });
          open_->At(start_s, t.listener)->requests++;
          s = open_->At(start_s, t.series);
        } else {
          remember_caller();
          begin_sig(Shape::kClientHttp);
          PutEndpoint(&sig, conn.remote());
          PutBytes(&sig, conn.remote().name());
          sig.append(endpoint);
          s = open_->At(start_s, cached([&] {
            // Endpoints are capped per caller->callee pair on the client side.
            probe.assign(who.service).append("->").append(callee());
            const std::string_view counted = EndpointFor(probe, endpoint);
            SigTarget target;
            target.folded = counted != endpoint;
            key.assign(1, static_cast<char>(EntityKind::kEdge));
            PutDim(&key, "callee", callee());
            PutDim(&key, "caller", who.service);
            PutDim(&key, "endpoint", counted);
            PutDim(&key, "instance", who.instance);
            PutDim(&key, "machine", machine);
            PutDim(&key, "side", "client");
            target.series = open_->Intern(key);
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
        break;
      }
      case v1::Event::kTcpConnect: {
        WindowStats* s = client_edge();
        const auto& c = ev.tcp_connect();
        if (c.result() == v1::TcpConnect::RESULT_ESTABLISHED) {
          s->connects_ok++;
          s->connect_ns.Add(static_cast<double>(c.duration_ns()));
        } else if (c.result() == v1::TcpConnect::RESULT_REFUSED) {
          s->connects_refused++;
        } else {
          s->connects_failed++;
        }
        break;
      }
      case v1::Event::kTcpReset: {
        if (!owned) counters->unattributed++;
        WindowStats* s = owned ? edge_series(side_of(ev.tcp_reset().role())) : machine_series();
        (ev.tcp_reset().direction() == v1::TcpReset::DIRECTION_SENT ? s->resets_sent
                                                                    : s->resets_received)++;
        break;
      }
      case v1::Event::kFlowStats: {
        const auto& f = ev.flow_stats();
        if (!owned) counters->unattributed++;
        WindowStats* s = owned ? edge_series(side_of(f.role())) : machine_series();
        s->packets_out += f.packets_out(), s->bytes_out += f.bytes_out();
        s->packets_in += f.packets_in(), s->bytes_in += f.bytes_in();
        s->retransmits += f.retransmits();
        for (const auto& [reason, n] : f.drops()) s->drops[reason] += n;
        if (f.srtt_us()) s->rtt_samples++, s->rtt_us_sum += f.srtt_us();
        break;
      }
      case v1::Event::kAgentStats: {
        WindowStats* s = machine_series();
        for (const auto& [reason, n] : ev.agent_stats().dropped()) s->agent_dropped += n;
        break;
      }
      case v1::Event::kCgroupResources: {
        const auto& c = ev.cgroup_resources();
        const std::string name = ContainerName(machine, c.cgroup_path(), c.container_id(),
                                               c.has_container() ? &c.container() : nullptr);
        if (name.empty()) break;  // the root cgroup: the machine's own figures say it
        key.assign(1, static_cast<char>(EntityKind::kContainer));
        PutDim(&key, "container", name);
        PutDim(&key, "machine", machine);
        WindowStats* s = Series(start_s, key);
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
        for (const auto& b : c.block_io()) {
          s->io_read_bytes += b.read_bytes(), s->io_write_bytes += b.write_bytes();
          s->io_ops += b.latency().count();
          AddLog2Histogram(b.latency(), &s->io_ns);
        }
        break;
      }
      case v1::Event::kOomKill:
        machine_series()->oom_kills++;
        break;
      case v1::Event::kMachineResources: {
        WindowStats* s = machine_series();
        const auto& m = ev.machine_resources();
        s->resource_samples++;
        s->cpu_busy_ns += m.cpu_busy_ns(), s->cpu_total_ns += m.cpu_total_ns();
        AddLog2Histogram(m.runq_latency(), &s->runq_ns);
        s->major_faults += m.major_page_faults();
        s->memory_available_sum += m.memory_available_bytes();
        for (const auto& b : m.block_io()) {
          s->io_read_bytes += b.read_bytes(), s->io_write_bytes += b.write_bytes();
          s->io_ops += b.latency().count();
          AddLog2Histogram(b.latency(), &s->io_ns);
        }
        break;
      }
      default:
        break;  // an event type newer than this processor: counted in events, nothing to add
    }
  }
  CloseWindows(counters);
}

void PartitionState::CloseWindows(ApplyCounters* counters) {
  const int64_t horizon_ns = max_event_ns_ - options_.allowed_lateness_s * kNsPerS;
  bool closed_any = false;
  while (open_->oldest_start() != INT64_MAX &&
         (open_->oldest_start() + options_.window_s) * kNsPerS <= horizon_ns) {
    ClosedWindow& closed = closed_since_commit_.emplace_back();
    closed.start_s = open_->oldest_start();
    open_->CloseOldest([&](std::string_view key, WindowStats&& stats) {
      closed.series.emplace_back(key, std::move(stats));
    });
    counters->windows_closed += closed.series.size();
    closed_any = true;
  }
  // Series no longer open may be forgotten: signatures then name ids that are gone.
  if (closed_any && open_->Compact()) sigs_->Clear();
}

Status PartitionState::Commit() {
  FAULTLINE_RETURN_IF_ERROR(BeginCommit());
  return FinishCommit();
}

Status PartitionState::BeginCommit() {
  assert(!committing_ && "BeginCommit twice without FinishCommit");
  auto owned = std::make_unique<Committing>(Committing{store_->NewBatch(), 0, nullptr});
  PartitionStore::Batch& batch = owned->batch;
  open_->ForEachChanged([&](int64_t start, std::string_view key, const WindowStats& stats) {
    batch.OpenSeries(start, key, stats);
  });
  for (const ClosedWindow& w : closed_since_commit_) {
    std::vector<std::pair<std::string_view, const WindowStats*>> series;
    series.reserve(w.series.size());
    for (const auto& [key, stats] : w.series) series.emplace_back(key, &stats);
    batch.ClosedWindow(w.start_s, std::move(series));
  }
  // Windows some of whose series were delivered: what of them is still to publish.
  std::sort(published_.begin(), published_.end());
  for (size_t i = 0; i < published_.size();) {
    const int64_t start = published_[i].first;
    size_t end = i;
    while (end < published_.size() && published_[end].first == start) ++end;
    std::vector<std::string_view> pending;
    for (auto it = outbox_.lower_bound({start, std::string()});
         it != outbox_.end() && it->first.first == start; ++it) {
      if (!std::binary_search(published_.begin() + static_cast<std::ptrdiff_t>(i),
                              published_.begin() + static_cast<std::ptrdiff_t>(end), it->first))
        pending.push_back(it->first.second);
    }
    batch.Unpublished(start, pending);
    i = end;
  }
  for (const auto& [owner, endpoint] : new_endpoints_) batch.Endpoint(owner, endpoint);
  for (const auto& [listener, service] : new_listeners_) batch.Listener(listener, service);
  if (peers_->end() > peers_committed_) {
    const uint64_t first = std::max(peers_committed_, peers_->front());
    batch.Peers(peers_->front(), first);
    peers_->ForEachRecord(first, [&](std::string_view key, std::string_view service,
                                     int64_t seen_s) { batch.Peer(key, service, seen_s); });
  }
  if (meta_dirty_) batch.Position(next_offset_, max_event_ns_);
  // History and undelivered outbox entries beyond retention.
  const int64_t cutoff = watermark_s() - options_.retention_s;
  if (max_event_ns_ > 0 && cutoff > 0) batch.Expire(cutoff);
  if (batch.empty()) return Status::Ok();
  if (changelog_.link) {
    FAULTLINE_RETURN_IF_ERROR(SnapshotIfDue());
    // The database's chain is that of the record that made its state: from this delta on, ours.
    if (store_->chain() != chain_) batch.Chain(chain_);
    const std::string_view rep = store_->Seal(batch);
    owned->delivery = changelog_.link->Send(
        partition_, Records(ChangelogKind::kDelta, epoch_, chain_, store_->seq() + 1,
                            Parts(rep, changelog_.part_bytes)));
  }
  owned->cutoff = cutoff;
  committing_ = std::move(owned);
  return Status::Ok();
}

Status PartitionState::FinishCommit() {
  if (!committing_) return Status::Ok();
  const std::unique_ptr<Committing> committing = std::move(committing_);
  PartitionStore::Batch& batch = committing->batch;
  const int64_t cutoff = committing->cutoff;
  if (committing->delivery) {
    // The changelog may hold this seq even so (a delivery that failed late): the retry's delta
    // of the same seq must follow a snapshot, which makes the earlier one void. Likewise when
    // the local write below fails after the changelog took it.
    if (Status st = committing->delivery->Wait(); !st.ok()) {
      snapshot_due_ = true;
      return st;
    }
    const uint64_t bytes = store_->Seal(batch).size();
    changelog_counters_.delta_bytes += bytes;
    commits_since_snapshot_++;
    bytes_since_snapshot_ += bytes;
  }
  if (Status st = store_->Commit(batch, options_.sync_commits); !st.ok()) {
    snapshot_due_ = changelog_.link != nullptr;
    return st;
  }

  // Durable: now the in-memory view follows.
  open_->ClearChanged();
  for (ClosedWindow& w : closed_since_commit_) {
    for (auto& [key, stats] : w.series)
      outbox_[{w.start_s, std::move(key)}] = OutboxEntry{std::move(stats), false};
  }
  closed_since_commit_.clear();
  for (const auto& k : published_) outbox_.erase(k);
  published_.clear();
  if (cutoff > 0) {
    for (auto it = outbox_.begin(); it != outbox_.end() && it->first.first < cutoff;) {
      outbox_expired_++;
      it = outbox_.erase(it);
    }
  }
  new_endpoints_.clear();
  new_listeners_.clear();
  peers_committed_ = peers_->end();
  meta_dirty_ = false;
  return Status::Ok();
}

Status PartitionState::Claim(uint64_t max_epoch) {
  // Before anything is committed, so that from the claim on every earlier writer's records are
  // fenced. The chain is this writer's own, never one that wrote before.
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  do chain_ = rng() >> 1;
  while (chain_ == 0 || chain_ == store_->chain());
  epoch_ = max_epoch + 1;
  ChangelogRecord claim;
  claim.kind = ChangelogKind::kClaim;
  claim.epoch = epoch_, claim.chain = chain_;
  claim.seq = store_->seq(), claim.base_chain = store_->chain();
  return changelog_.link->Write(partition_, {claim});
}

Status PartitionState::SnapshotIfDue() {
  const bool due = snapshot_due_ || commits_since_snapshot_ >= changelog_.snapshot_commits ||
                   bytes_since_snapshot_ >= std::max(changelog_.snapshot_bytes,
                                                     last_snapshot_bytes_);
  if (!due) return Status::Ok();
  std::vector<std::string> batches;
  FAULTLINE_RETURN_IF_ERROR(store_->Snapshot(changelog_.part_bytes, [&](std::string_view b) {
    batches.emplace_back(b);
    return Status::Ok();
  }));
  const std::vector<std::string_view> parts(batches.begin(), batches.end());
  FAULTLINE_RETURN_IF_ERROR(changelog_.link->Write(
      partition_, Records(ChangelogKind::kSnapshot, epoch_, chain_, store_->seq(), parts)));
  if (chain_ != store_->chain()) FAULTLINE_RETURN_IF_ERROR(store_->SetChain(chain_));
  uint64_t bytes = 0;
  for (const std::string& b : batches) bytes += b.size();
  snapshot_due_ = false;
  commits_since_snapshot_ = 0;
  bytes_since_snapshot_ = 0;
  last_snapshot_bytes_ = bytes;
  changelog_counters_.snapshots++;
  changelog_counters_.snapshot_bytes += bytes;
  return Status::Ok();
}

std::vector<StoredWindow> PartitionState::TakeOutbox() {
  std::vector<StoredWindow> out;
  for (auto& [k, entry] : outbox_) {
    if (entry.handed_out) continue;
    entry.handed_out = true;
    auto key = SeriesKey::Decode(k.second);
    if (key.ok())
      out.push_back(StoredWindow{k.first, std::move(key).value(), entry.stats, false, {}});
  }
  return out;
}

std::vector<StoredWindow> PartitionState::PeekOutbox() const {
  std::vector<StoredWindow> out;
  for (const auto& [k, entry] : outbox_) {
    if (entry.handed_out) continue;
    auto key = SeriesKey::Decode(k.second);
    if (key.ok())
      out.push_back(StoredWindow{k.first, std::move(key).value(), entry.stats, false, {}});
  }
  return out;
}

void PartitionState::Published(int64_t start_s, const SeriesKey& key) {
  published_.emplace_back(start_s, key.Encode());
}

Result<std::vector<StoredWindow>> PartitionState::ReadWindows(const std::string& partition_dir,
                                                              bool include_open,
                                                              int64_t* window_s) {
  std::vector<StoredWindow> out;
  Status bad_key;
  FAULTLINE_RETURN_IF_ERROR(PartitionStore::ReadWindows(
      partition_dir, include_open, window_s,
      [&](int64_t start_s, std::string_view encoded, WindowStats stats, bool open) {
        auto key = SeriesKey::Decode(encoded);
        if (!key.ok()) {
          if (bad_key.ok()) bad_key = key.status();
          return;
        }
        out.push_back(StoredWindow{start_s, std::move(key).value(), std::move(stats), open, {}});
      }));
  if (!bad_key.ok()) return Internal("partition state " + partition_dir + ": " + bad_key.message());
  return out;
}

}  // namespace faultline::stream
