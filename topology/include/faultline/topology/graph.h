// The service/machine topology: who calls whom, which instances make up a service, which machine
// each instance runs on, and which machines talk over the network. Built from windows
// (the identity join of model/identity.h), persisted by topology_store.h, aged out when unseen for
// a while.
//
// Nodes are named by (kind, name): services, instances (a process of a service), containers (the
// cgroup an instance runs in), machines, and external endpoints (peers no listener record
// names). Edges:
//   calls:       service -> service | external   (client-side view of HTTP/TCP traffic)
//   instance_of: instance -> service
//   runs_on:     instance -> container | machine, container -> machine
//   network:     machine -> machine | external, external -> machine   (the machines whose
//                connections carry calls, from the caller's end to the callee's: every calls edge
//                between two machines, or between a machine and an external endpoint either way,
//                has one; an external end is the same node as the call's)
// Every node and edge keeps when it was first and last seen (event time, seconds); calls keep the
// requests counted on them in the windows last observed (the stream's retained history).
//
// The graph is a Boost.Graph adjacency_list behind a pimpl, so including this header stays cheap.
// Thread-compatible.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/catalog.h"
#include "faultline/common/status.h"

namespace faultline::model {
struct StoredWindow;  // window_stats.h
}  // namespace faultline::model

namespace faultline::topology {

// Node kinds are entity kinds (faultline/common/catalog.h): these five.
inline constexpr KindSet kNodeKinds{EntityKind::kService, EntityKind::kInstance,
                                    EntityKind::kContainer, EntityKind::kMachine,
                                    EntityKind::kExternal};
enum class EdgeKind : uint8_t { kCalls = 1, kInstanceOf = 2, kRunsOn = 3, kNetwork = 4 };
std::string_view EdgeKindName(EdgeKind kind);
// Errors: kInvalidArgument naming the known kinds.
Result<EntityKind> ParseNodeKind(std::string_view name);
Result<EdgeKind> ParseEdgeKind(std::string_view name);

struct NodeRef {
  EntityKind kind = EntityKind::kService;
  std::string name;
  friend bool operator==(const NodeRef&, const NodeRef&) = default;
  friend auto operator<=>(const NodeRef&, const NodeRef&) = default;
};

struct NodeInfo {
  NodeRef ref;
  int64_t first_seen_s = 0, last_seen_s = 0;
};

struct EdgeInfo {
  EdgeKind kind = EdgeKind::kCalls;
  NodeRef from, to;
  int64_t first_seen_s = 0, last_seen_s = 0;
  uint64_t requests = 0;  // calls: requests seen on the edge
};

class Topology {
 public:
  Topology();
  ~Topology();
  Topology(Topology&&) noexcept;
  Topology& operator=(Topology&&) noexcept;

  // Adds the node or refreshes its last-seen time (seen_s may arrive out of order).
  void ObserveNode(const NodeRef& node, int64_t seen_s);
  // Adds both ends and the edge, or refreshes them; `requests` adds to the edge's count.
  void ObserveEdge(EdgeKind kind, const NodeRef& from, const NodeRef& to, int64_t seen_s,
                   uint64_t requests = 0);

  // Everything the windows imply (edges resolved: model::Identity::Resolve). A window
  // counts as seen at its end. Client-side edges give calls (to the service listening at the
  // callee address, else to an external endpoint) and network links between the machines;
  // server-side edges add an external caller only when its address is no known host's (a host
  // that listens somewhere in the data), since a known host's own agent reports the client side.
  // A calls edge's requests become the sum over these windows (not added to what it held).
  void ObserveWindows(const std::vector<model::StoredWindow>& windows, int64_t window_s);

  // Removes edges, then nodes, not seen since now_s - max_age_s (and edges of removed nodes).
  // Returns how many nodes and edges went.
  size_t AgeOut(int64_t now_s, int64_t max_age_s);
  // The latest last-seen time of any node (0 when empty): "now" for recorded data.
  int64_t LatestSeen() const;

  size_t node_count() const;
  size_t edge_count() const;
  // Sorted by (kind, name) and (kind, from, to).
  std::vector<NodeInfo> Nodes() const;
  std::vector<EdgeInfo> Edges() const;
  bool HasNode(const NodeRef& node) const;
  // The other ends of `node`'s out-edges (or in-edges) of `kind`, sorted.
  std::vector<NodeRef> Successors(const NodeRef& node, EdgeKind kind) const;
  std::vector<NodeRef> Predecessors(const NodeRef& node, EdgeKind kind) const;
  // Services reachable from `service` along calls edges, breadth first, with their hop count
  // (the service itself at 0).
  std::vector<std::pair<NodeRef, int>> Downstream(const NodeRef& service) const;

  // Renderings. text: one line per node and edge; json: {"nodes":[…],"edges":[…]}; dot: a
  // Graphviz digraph (services as boxes, machines as 3d boxes, external endpoints dashed).
  std::string ToText() const;
  std::string ToJson() const;
  std::string ToDot() const;


 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace faultline::topology
