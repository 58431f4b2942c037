#include "faultline/topology/graph.h"

#include <algorithm>
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/breadth_first_search.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "faultline/common/text.h"
#include "faultline/model/identity.h"

namespace faultline::topology {
namespace {

constexpr std::string_view kEdgeKinds[] = {"", "calls", "instance_of", "runs_on", "network"};

struct VertexProps {
  NodeRef ref;
  int64_t first_seen_s = 0, last_seen_s = 0;
};
struct EdgeProps {
  EdgeKind kind = EdgeKind::kCalls;
  int64_t first_seen_s = 0, last_seen_s = 0;
  uint64_t requests = 0;
};

// listS for vertices and edges: descriptors stay valid when others are removed (ageing).
using Graph = boost::adjacency_list<boost::listS, boost::listS, boost::bidirectionalS, VertexProps,
                                    EdgeProps>;
using Vertex = Graph::vertex_descriptor;
using Edge = Graph::edge_descriptor;

}  // namespace

std::string_view EdgeKindName(EdgeKind kind) { return kEdgeKinds[static_cast<int>(kind)]; }

Result<EntityKind> ParseNodeKind(std::string_view name) {
  return ParseEntityKind(name, kNodeKinds);
}
Result<EdgeKind> ParseEdgeKind(std::string_view name) {
  for (int k = 1; k <= 4; ++k)
    if (kEdgeKinds[k] == name) return static_cast<EdgeKind>(k);
  return InvalidArgument("edge kind \"" + std::string(name) +
                         "\": expected calls, instance_of, runs_on or network");
}

struct Topology::Impl {
  Graph g;
  std::map<NodeRef, Vertex> index;

  Vertex Upsert(const NodeRef& n, int64_t seen_s) {
    auto [it, fresh] = index.try_emplace(n);
    if (fresh) {
      it->second = boost::add_vertex(VertexProps{n, seen_s, seen_s}, g);
    } else {
      VertexProps& p = g[it->second];
      p.first_seen_s = std::min(p.first_seen_s, seen_s);
      p.last_seen_s = std::max(p.last_seen_s, seen_s);
    }
    return it->second;
  }
  std::optional<Edge> Find(Vertex u, Vertex v, EdgeKind kind) const {
    for (auto [e, end] = boost::out_edges(u, g); e != end; ++e)
      if (boost::target(*e, g) == v && g[*e].kind == kind) return *e;
    return std::nullopt;
  }
  const Vertex* Lookup(const NodeRef& n) const {
    auto it = index.find(n);
    return it == index.end() ? nullptr : &it->second;
  }
};

Topology::Topology() : impl_(std::make_unique<Impl>()) {}
Topology::~Topology() = default;
Topology::Topology(Topology&&) noexcept = default;
Topology& Topology::operator=(Topology&&) noexcept = default;

void Topology::ObserveNode(const NodeRef& node, int64_t seen_s) { impl_->Upsert(node, seen_s); }

void Topology::ObserveEdge(EdgeKind kind, const NodeRef& from, const NodeRef& to, int64_t seen_s,
                           uint64_t requests) {
  const Vertex u = impl_->Upsert(from, seen_s), v = impl_->Upsert(to, seen_s);
  if (auto e = impl_->Find(u, v, kind)) {
    EdgeProps& p = impl_->g[*e];
    p.first_seen_s = std::min(p.first_seen_s, seen_s);
    p.last_seen_s = std::max(p.last_seen_s, seen_s);
    p.requests += requests;
    return;
  }
  boost::add_edge(u, v, EdgeProps{kind, seen_s, seen_s, requests}, impl_->g);
}

void Topology::ObserveWindows(const std::vector<model::StoredWindow>& windows, int64_t window_s) {

  // The listeners of these windows: who an edge calls, on which machine, from outside or not.
  model::Identity identity;
  for (const auto& w : windows) identity.Observe(w);
  // Requests per calls edge over these windows: they replace what the edge held (the windows
  // are the stream's retained history, so counting them again must not add them twice).
  std::map<std::pair<NodeRef, NodeRef>, uint64_t> requests;
  for (const auto& w : windows) {
    const int64_t seen = w.start_s + window_s;
    const std::string_view machine = w.key.Dim(dim::kMachine), instance = w.key.Dim(dim::kInstance);
    switch (w.key.kind) {
      case EntityKind::kService:
      case EntityKind::kListener: {
        const NodeRef service{EntityKind::kService, std::string(w.key.Dim(dim::kService))};
        ObserveNode(service, seen);
        if (!machine.empty()) ObserveNode({EntityKind::kMachine, std::string(machine)}, seen);
        if (!instance.empty()) {
          const NodeRef inst{EntityKind::kInstance, std::string(instance)};
          ObserveEdge(EdgeKind::kInstanceOf, inst, service, seen);
          // instance -> its container -> the machine, or instance -> machine without one.
          const std::string_view container = w.key.Dim(dim::kContainer);
          const NodeRef host = container.empty()
                                   ? NodeRef{EntityKind::kMachine, std::string(machine)}
                                   : NodeRef{EntityKind::kContainer, std::string(container)};
          if (!machine.empty() || !container.empty()) ObserveEdge(EdgeKind::kRunsOn, inst, host, seen);
          if (!machine.empty() && !container.empty())
            ObserveEdge(EdgeKind::kRunsOn, host, {EntityKind::kMachine, std::string(machine)}, seen);
        }
        break;
      }
      case EntityKind::kMachine:
        ObserveNode({EntityKind::kMachine, std::string(machine)}, seen);
        break;
      case EntityKind::kContainer: {
        const NodeRef container{EntityKind::kContainer, std::string(w.key.Dim(dim::kContainer))};
        ObserveNode(container, seen);
        if (!machine.empty())
          ObserveEdge(EdgeKind::kRunsOn, container, {EntityKind::kMachine, std::string(machine)}, seen);
        break;
      }
      case EntityKind::kEdge: {
        const std::string_view caller = w.key.Dim(dim::kCaller), callee = w.key.Dim(dim::kCallee);
        if (w.key.Dim(dim::kSide) == dim::kServerSide) {
          // A named caller, a known host or a loopback peer: the client side reports the call.
          if (!identity.IsExternalCaller(w.key)) break;
          const NodeRef from{EntityKind::kExternal, std::string(caller)};
          const NodeRef to{EntityKind::kService, std::string(callee)};
          ObserveEdge(EdgeKind::kCalls, from, to, seen);
          requests[{from, to}] += w.stats.requests;
          // Its connections arrive at the callee's machine from outside: the same network link
          // a call to an external callee has, the other way.
          if (!machine.empty())
            ObserveEdge(EdgeKind::kNetwork, from, {EntityKind::kMachine, std::string(machine)}, seen);
          break;
        }
        const NodeRef from{EntityKind::kService, std::string(caller)};
        const NodeRef to{w.callee_service.empty() ? EntityKind::kExternal : EntityKind::kService,
                         w.CalleeEntity()};
        ObserveEdge(EdgeKind::kCalls, from, to, seen);
        requests[{from, to}] += w.stats.requests;
        if (machine.empty()) break;
        const std::string_view callee_machine = identity.CalleeMachine(w.key);
        const NodeRef peer = !callee_machine.empty()
                                 ? NodeRef{EntityKind::kMachine, std::string(callee_machine)}
                                 : NodeRef{EntityKind::kExternal, model::ExternalName(callee)};
        ObserveEdge(EdgeKind::kNetwork, {EntityKind::kMachine, std::string(machine)}, peer, seen);
        break;
      }
      default:
        break;  // the stream makes no windows of other kinds
    }
  }
  for (const auto& [ends, n] : requests) {
    const Vertex u = impl_->index.at(ends.first), v = impl_->index.at(ends.second);
    impl_->g[*impl_->Find(u, v, EdgeKind::kCalls)].requests = n;
  }
}

size_t Topology::AgeOut(int64_t now_s, int64_t max_age_s) {
  const int64_t cutoff = now_s - max_age_s;
  Graph& g = impl_->g;
  size_t removed = 0;
  boost::remove_edge_if(
      [&](const Edge& e) {
        const bool old = g[e].last_seen_s < cutoff;
        removed += old;
        return old;
      },
      g);
  for (auto it = impl_->index.begin(); it != impl_->index.end();) {
    if (g[it->second].last_seen_s >= cutoff) {
      ++it;
      continue;
    }
    removed += 1 + boost::in_degree(it->second, g) + boost::out_degree(it->second, g);
    boost::clear_vertex(it->second, g);
    boost::remove_vertex(it->second, g);
    it = impl_->index.erase(it);
  }
  return removed;
}

int64_t Topology::LatestSeen() const {
  int64_t latest = 0;
  for (const auto& [ref, v] : impl_->index) latest = std::max(latest, impl_->g[v].last_seen_s);
  return latest;
}

size_t Topology::node_count() const { return boost::num_vertices(impl_->g); }
size_t Topology::edge_count() const { return boost::num_edges(impl_->g); }

std::vector<NodeInfo> Topology::Nodes() const {
  std::vector<NodeInfo> out;
  for (const auto& [ref, v] : impl_->index) {
    const VertexProps& p = impl_->g[v];
    out.push_back({ref, p.first_seen_s, p.last_seen_s});
  }
  return out;  // the index is ordered by (kind, name)
}

std::vector<EdgeInfo> Topology::Edges() const {
  const Graph& g = impl_->g;
  std::vector<EdgeInfo> out;
  for (auto [e, end] = boost::edges(g); e != end; ++e) {
    const EdgeProps& p = g[*e];
    out.push_back({p.kind, g[boost::source(*e, g)].ref, g[boost::target(*e, g)].ref, p.first_seen_s,
                   p.last_seen_s, p.requests});
  }
  std::sort(out.begin(), out.end(), [](const EdgeInfo& a, const EdgeInfo& b) {
    return std::tie(a.kind, a.from, a.to) < std::tie(b.kind, b.from, b.to);
  });
  return out;
}

bool Topology::HasNode(const NodeRef& node) const { return impl_->Lookup(node) != nullptr; }

std::vector<NodeRef> Topology::Successors(const NodeRef& node, EdgeKind kind) const {
  std::vector<NodeRef> out;
  const Vertex* v = impl_->Lookup(node);
  if (!v) return out;
  const Graph& g = impl_->g;
  for (auto [e, end] = boost::out_edges(*v, g); e != end; ++e)
    if (g[*e].kind == kind) out.push_back(g[boost::target(*e, g)].ref);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<NodeRef> Topology::Predecessors(const NodeRef& node, EdgeKind kind) const {
  std::vector<NodeRef> out;
  const Vertex* v = impl_->Lookup(node);
  if (!v) return out;
  const Graph& g = impl_->g;
  for (auto [e, end] = boost::in_edges(*v, g); e != end; ++e)
    if (g[*e].kind == kind) out.push_back(g[boost::source(*e, g)].ref);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {
// Records each service's hop count from the start, following calls edges only.
struct HopRecorder : boost::default_bfs_visitor {
  std::map<Vertex, int>* hops;
  void tree_edge(const Edge& e, const Graph& g) const {
    (*hops)[boost::target(e, g)] = (*hops)[boost::source(e, g)] + 1;
  }
};
}  // namespace

std::vector<std::pair<NodeRef, int>> Topology::Downstream(const NodeRef& service) const {
  std::vector<std::pair<NodeRef, int>> out;
  const Vertex* start = impl_->Lookup(service);
  if (!start) return out;
  // BFS over the calls subgraph: a filtered copy keeps the visitor simple and the graph small.
  const Graph& g = impl_->g;
  Graph calls;
  std::map<Vertex, Vertex> to_calls, from_calls;
  for (const auto& [ref, v] : impl_->index) {
    if (ref.kind != EntityKind::kService && ref.kind != EntityKind::kExternal) continue;
    const Vertex c = boost::add_vertex(g[v], calls);
    to_calls[v] = c, from_calls[c] = v;
  }
  for (auto [e, end] = boost::edges(g); e != end; ++e) {
    if (g[*e].kind != EdgeKind::kCalls) continue;
    boost::add_edge(to_calls.at(boost::source(*e, g)), to_calls.at(boost::target(*e, g)), g[*e],
                    calls);
  }
  // listS vertices need an explicit index and colour map.
  std::map<Vertex, size_t> index_of;
  for (auto [v, end] = boost::vertices(calls); v != end; ++v) index_of.emplace(*v, index_of.size());
  std::vector<boost::default_color_type> colors(index_of.size());
  auto index_map = boost::make_assoc_property_map(index_of);
  auto color_map = boost::make_iterator_property_map(colors.begin(), index_map);
  std::map<Vertex, int> hops;
  const Vertex root = to_calls.at(*start);
  hops[root] = 0;
  HopRecorder rec;
  rec.hops = &hops;
  boost::breadth_first_search(calls, root, boost::visitor(rec).color_map(color_map));
  for (const auto& [v, h] : hops) out.emplace_back(calls[v].ref, h);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second, a.first) < std::tie(b.second, b.first);
  });
  return out;
}

std::string Topology::ToText() const {
  std::string out;
  const auto nodes = Nodes();
  const auto edges = Edges();
  out += std::to_string(nodes.size()) + " nodes, " + std::to_string(edges.size()) + " edges\n";
  for (const NodeInfo& n : nodes) {
    out += "node ";
    out += EntityKindName(n.ref.kind);
    out += " " + n.ref.name + "  seen " + std::to_string(n.first_seen_s) + ".." +
           std::to_string(n.last_seen_s) + "\n";
  }
  for (const EdgeInfo& e : edges) {
    out += "edge ";
    out += EdgeKindName(e.kind);
    out += " " + e.from.name + " -> " + e.to.name;
    if (e.kind == EdgeKind::kCalls) out += "  requests " + std::to_string(e.requests);
    out += "  seen " + std::to_string(e.first_seen_s) + ".." + std::to_string(e.last_seen_s) + "\n";
  }
  return out;
}

std::string Topology::ToJson() const {
  nlohmann::ordered_json j;
  j["nodes"] = nlohmann::ordered_json::array();
  for (const NodeInfo& n : Nodes()) {
    j["nodes"].push_back({{"kind", EntityKindName(n.ref.kind)},
                          {"name", n.ref.name},
                          {"first_seen_s", n.first_seen_s},
                          {"last_seen_s", n.last_seen_s}});
  }
  j["edges"] = nlohmann::ordered_json::array();
  for (const EdgeInfo& e : Edges()) {
    nlohmann::ordered_json o = {{"kind", EdgeKindName(e.kind)},
                                {"from_kind", EntityKindName(e.from.kind)},
                                {"from", e.from.name},
                                {"to_kind", EntityKindName(e.to.kind)},
                                {"to", e.to.name},
                                {"first_seen_s", e.first_seen_s},
                                {"last_seen_s", e.last_seen_s}};
    if (e.kind == EdgeKind::kCalls) o["requests"] = e.requests;
    j["edges"].push_back(std::move(o));
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Topology::ToDot() const {
  auto id = [](const NodeRef& n) {
    return DotQuote(std::string(EntityKindName(n.kind)) + ":" + n.name);
  };
  std::string out = "digraph faultline {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n";
  for (const NodeInfo& n : Nodes()) {
    std::string_view shape = "shape=box, style=rounded";  // services
    switch (n.ref.kind) {
      case EntityKind::kInstance:
        shape = "shape=ellipse, fontsize=10";
        break;
      case EntityKind::kContainer:
        shape = "shape=component, fontsize=10";
        break;
      case EntityKind::kMachine:
        shape = "shape=box3d";
        break;
      case EntityKind::kExternal:
        shape = "shape=box, style=dashed";
        break;
      default:
        break;
    }
    out += "  " + id(n.ref) + " [label=" + DotQuote(n.ref.name) + ", " + std::string(shape) +
           "];\n";
  }
  for (const EdgeInfo& e : Edges()) {
    out += "  " + id(e.from) + " -> " + id(e.to);
    switch (e.kind) {
      case EdgeKind::kCalls:
        out += " [label=" + DotQuote(std::to_string(e.requests) + " req") + ", penwidth=2]";
        break;
      case EdgeKind::kInstanceOf:
        out += " [style=dotted, arrowhead=none]";
        break;
      case EdgeKind::kRunsOn:
        out += " [style=dotted, color=gray40]";
        break;
      case EdgeKind::kNetwork:
        out += " [style=dashed, color=steelblue]";
        break;
    }
    out += ";\n";
  }
  return out + "}\n";
}

}  // namespace faultline::topology
