// What PartitionState::Apply shares with the event handlers (event_handlers.cc): the learned
// endpoints and listeners, the signature cache, and one event's scope. Private to stream/.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "events.pb.h"
#include "faultline/common/varint.h"
#include "faultline/stream/partition_state.h"
#include "open_windows.h"
#include "peer_table.h"

namespace faultline::stream {

struct PartitionState::Learned {
  absl::flat_hash_set<std::string> endpoints;                  // "owner\0endpoint"
  absl::flat_hash_map<std::string, size_t> endpoint_counts;    // by owner
  absl::flat_hash_map<std::string, std::string> listeners;     // "machine|ip:port" -> service
  static absl::string_view View(std::string_view s) { return {s.data(), s.size()}; }
  bool HasListener(std::string_view key) const { return listeners.contains(View(key)); }
};

// What a series signature stands for: the series an event of that shape updates (and, for a
// server-side exchange, its listener series), and whether its endpoint was folded into "other".
struct SigTarget {
  uint32_t series = 0;
  uint32_t listener = 0;
  bool folded = false;
};

// Signature shapes: which fields of an event decide its series.
enum class Shape : char { kServerHttp = 1, kClientHttp = 2, kClientEdge = 3, kMachine = 4 };

inline void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }
// An address as raw bytes, length first, then its port.
inline void PutEndpoint(std::string* out, const v1::Endpoint& e) {
  out->push_back(static_cast<char>(e.addr().size()));
  out->append(e.addr());
  PutU32(out, e.port());
}

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

// The names of the process that owns an event, once per process of a batch.
struct ProcessNames {
  uint32_t pid;
  std::string service, instance, container;
  uint32_t who;  // the four names' id in the signature cache
};

// Buffers reused from event to event of a batch.
struct EventScratch {
  std::string local, remote, key, probe, endpoint, peer_key, sig;
};

// One event while it is applied: its process, its connection's ends (formatted only when a path
// needs them), its window, and the series it may update, built once per signature and then
// found in the signature cache.
struct PartitionState::EventScope {
  PartitionState& p;
  ApplyCounters* counters;
  const std::string& machine;  // the node the batch came from
  const ProcessNames& who;
  const v1::Event& ev;
  int64_t start_s;  // the event's window
  EventScratch& scratch;

  const v1::Connection& conn() const { return ev.connection(); }
  // Whether a process owns the event (network events may have none).
  bool owned() const { return ev.pid() != 0; }
  const std::string& LocalText();
  const std::string& RemoteText();
  // The callee of a call: the Kubernetes entity the agent named the address with (a Service's
  // ClusterIP: "{namespace}/{service}"), else the address, which the listener records resolve.
  std::string_view Callee();
  // "machine|ip:port": an end of a connection on this node, as listeners and peers are keyed.
  std::string_view OnMachine(std::string* buf, const std::string& end);
  std::string_view ListenerProbe() { return OnMachine(&scratch.probe, LocalText()); }
  // The client end of this connection, as the caller's side registers it and the callee's side
  // looks it up (same node: same agent, same partition).
  std::string_view PeerProbe(const std::string& end) { return OnMachine(&scratch.peer_key, end); }
  void RememberCaller();
  // Starts this event's signature (`scratch.sig`) with its shape and process.
  void BeginSig(Shape shape);
  // The target of the signature, computed by `miss` on first sight.
  template <typename Miss>
  const SigTarget& Cached(Miss&& miss);
  // A client-side edge (no endpoint): connects, and flows and resets on the caller's side.
  model::WindowStats* ClientEdge();
  // A server-side edge: the caller by name when its own side was seen on this node, else by
  // address. Not cached: the peer records change with every new connection.
  model::WindowStats* ServerEdge();
  // Which end of a connection is the server, for network events (they carry no role): the end
  // that served HTTP here before (a known listener), else the end with the lower port (servers
  // mostly listen below the ephemeral range, and clients' ports come from it).
  bool ServerSide();
  // The side of a flow or reset: its socket's owner record says (connected: client, accepted:
  // server); without one, the listener records and the port heuristic decide.
  bool SideOf(v1::Role role) {
    return role == v1::ROLE_SERVER ? true : role == v1::ROLE_CLIENT ? false : ServerSide();
  }
  model::WindowStats* EdgeSeries(bool server) { return server ? ServerEdge() : ClientEdge(); }
  // Network events with no owning process belong to no service: the machine keeps them (its
  // interface-level figures), counted as unattributed.
  model::WindowStats* MachineSeries();

  // The partition's state, as handlers use it.
  OpenWindows& windows() { return *p.open_; }
  // The series `key` (encoded) in this event's window.
  model::WindowStats* Series(std::string_view key) { return p.Series(start_s, key); }
  // The endpoint as counted for `owner`: itself, or "other" past the cap.
  std::string_view EndpointFor(std::string_view owner, std::string_view endpoint) {
    return p.EndpointFor(owner, endpoint);
  }
  // Registers that this event's local end serves HTTP for its process's service (once).
  void LearnListener() {
    if (p.learned_->HasListener(ListenerProbe())) return;
    p.learned_->listeners.emplace(scratch.probe, who.service);
    p.new_listeners_.emplace_back(scratch.probe, who.service);
  }

  bool have_local = false, have_remote = false;
};

template <typename Miss>
const SigTarget& PartitionState::EventScope::Cached(Miss&& miss) {
  auto it = p.sigs_->targets.find(absl::string_view(scratch.sig.data(), scratch.sig.size()));
  if (it == p.sigs_->targets.end()) it = p.sigs_->targets.emplace(scratch.sig, miss()).first;
  counters->endpoints_folded += it->second.folded;
  return it->second;
}

// How one kind of event adds to the windows: one handler per v1::Event kind, so that a new
// protocol adds a handler, not a branch. Null for kinds this processor does not know (counted in
// events, nothing added).
using EventHandler = void (*)(PartitionState::EventScope& scope);
EventHandler HandlerFor(v1::Event::KindCase kind);

}  // namespace faultline::stream
