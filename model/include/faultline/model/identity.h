// The identity join: from a window's dimensions to the entities it is about. Written once, for
// every reader of windows: the stream's queries, situations, the live topology and the live
// diagnosis.
//
// What the windows say (window_stats.h): a listener window binds an address to the service
// listening there ("m1|127.0.0.1:80" for a loopback address, which names a listener only on its
// own machine); a client-side edge names its callee by address ("10.0.0.2:8080",
// "[fd00::2]:80") or by a name the agent resolved ("{namespace}/{name}"); a server-side edge
// names its caller by service when both ends are on one node, else by the peer's address.
//
// What the join decides:
//   - which service a client-side edge calls (the latest listener bound to its callee address),
//     else which external endpoint (ExternalName: one peer per outside host and service port);
//   - which machine that callee runs on (for the network links between machines);
//   - whether a server-side edge's caller is outside the system: an address that is not loopback
//     and is no host that listens anywhere in the data (a known host's own agent reports the
//     client side of the call, so counting the server side too would count it twice);
//   - which analysis series a window adds to (SeriesOf).
//
// Thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "faultline/common/catalog.h"
#include "faultline/model/window_stats.h"

namespace faultline::model {

// Whether an address ("127.0.0.1:80", "[::1]:80", or a bare host) is a loopback one.
bool IsLoopbackAddress(std::string_view address);
// How a listening address is looked up across machines: a loopback address names a listener only
// on its own machine, so it is qualified by it ("m1|127.0.0.1:80"); others stand alone.
std::string ListenerKey(std::string_view address, std::string_view machine);
// Whether a server-side edge's caller is an address ("10.0.0.1", "[fd00::1]") rather than the
// calling service's name (which the stream knows when both ends are on one node).
bool IsAddressHost(std::string_view caller);
// Whether a client-side edge's callee is an entity the agent named (a Kubernetes Service,
// "{namespace}/{name}": it holds a '/', which no address does) rather than an address.
inline bool IsNamedCallee(std::string_view callee) {
  return callee.find('/') != std::string_view::npos;
}
// The host of an address: "10.0.0.1:80" -> "10.0.0.1", "[fd00::1]:80" -> "[fd00::1]"; a host
// without a port ("10.0.0.1", "[fd00::1]") is itself.
std::string_view HostOf(std::string_view address);
// Linux's default ephemeral port range starts here (net.ipv4.ip_local_port_range).
inline constexpr int kFirstEphemeralPort = 32768;
// An external endpoint's entity name: its address with the port when the port is a service port
// (below kFirstEphemeralPort), the address alone otherwise, so that one outside host's ephemeral
// ports make one peer, never one entity per port ("10.0.0.9:5432", "10.0.0.9").
std::string ExternalName(std::string_view address);

// The listeners of a set of windows, and the decisions that need them.
class Identity {
 public:
  // Learns a listener window's binding; windows of other kinds are ignored. Of several bindings
  // of one address, the one of the latest window wins (of equal ones, the last observed).
  void Observe(const SeriesKey& key, int64_t start_s);
  void Observe(const StoredWindow& w) { Observe(w.key, w.start_s); }

  // The service an edge calls: a server-side edge's callee, a client-side edge's named callee,
  // else the service listening at its callee address; "" when none is known (an external
  // endpoint). Fills StoredWindow::callee_service.
  std::string CalleeService(const SeriesKey& edge) const;
  void Resolve(StoredWindow* w) const;
  // The machine whose listener holds a client-side edge's callee address; "" when none does.
  std::string_view CalleeMachine(const SeriesKey& edge) const;
  // Whether a server-side edge's caller is outside the system (see the top of this file).
  bool IsExternalCaller(const SeriesKey& server_edge) const;

 private:
  struct Binding {
    int64_t start_s = INT64_MIN;
    std::string service, machine;
  };
  const Binding* Find(std::string_view address, std::string_view machine) const;
  std::map<std::string, Binding, std::less<>> listeners_;  // by ListenerKey
  std::set<std::string, std::less<>> hosts_;               // HostOf every listening address
};

// An analysis entity: a series' owner (a service, an edge "caller->callee", a machine, a
// container), or a topology node.
struct EntityRef {
  EntityKind kind = EntityKind::kService;
  std::string name;
  friend bool operator==(const EntityRef&, const EntityRef&) = default;
  friend auto operator<=>(const EntityRef&, const EntityRef&) = default;
};

// The analysis series a window adds to (its callee resolved: Identity::Resolve): its service
// (merged over instances and endpoints), its machine, its container, or for an edge
// "caller->callee", where the caller's side is the edge's view and the callee's side adds its
// network health (drops on arrival, its own retransmits) when it names its caller. None for
// listeners (the join reads them) and for the callee's side of a call from an address (server
// edge windows hold network figures only, so nothing is counted twice).
std::optional<EntityRef> SeriesOf(const StoredWindow& w);
// The labels detector rules match a series on: service; caller and callee; machine; container
// and machine.
std::map<std::string, std::string> SeriesLabels(const StoredWindow& w, const EntityRef& series);

}  // namespace faultline::model
