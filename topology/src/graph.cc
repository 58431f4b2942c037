#include "faultline/topology/graph.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/breadth_first_search.hpp>
#include <charconv>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "faultline/common/text.h"
#include "faultline/stream/partition_state.h"
#include "faultline/stream/window_query.h"

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

std::string_view HostOf(std::string_view address) {  // "10.0.0.1:80" -> "10.0.0.1"
  const size_t colon = address.rfind(':');
  return colon == std::string_view::npos ? address : address.substr(0, colon);
}

// Record layout in the store: keys "n|<kind name>|<name>" and "e|<edge kind>|<from kind
// name>|<to kind name>|<from>\0<to>", values "<first> <last>[ <requests>]" in decimal. Stores
// written before the entity kinds were unified hold node kinds as numbers 1-4 (service,
// instance, machine, external); Load reads both.
std::string NodeKey(const NodeRef& n) {
  return "n|" + std::string(EntityKindName(n.kind)) + "|" + n.name;
}
std::string EdgeKey(EdgeKind k, const NodeRef& from, const NodeRef& to) {
  std::string key = "e|" + std::to_string(static_cast<int>(k)) + "|" +
                    std::string(EntityKindName(from.kind)) + "|" +
                    std::string(EntityKindName(to.kind)) + "|" + from.name;
  key.push_back('\0');
  key += to.name;
  return key;
}

bool ParseInt(std::string_view s, int64_t* v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size();
}


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

void Topology::ObserveWindows(const std::vector<stream::StoredWindow>& windows, int64_t window_s) {

  // Hosts that listen somewhere, and the machine behind each listening address (by ListenerKey,
  // the same lookup QueryWindows resolves callees with).
  std::set<std::string, std::less<>> known_hosts;
  std::map<std::string, std::string> machine_of_address;
  for (const auto& w : windows) {
    if (w.key.kind != EntityKind::kListener) continue;
    const std::string_view address = w.key.Dim("address");
    known_hosts.emplace(HostOf(address));
    machine_of_address[stream::ListenerKey(address, w.key.Dim("machine"))] =
        std::string(w.key.Dim("machine"));
  }
  // Requests per calls edge over these windows: they replace what the edge held (the windows
  // are the stream's retained history, so counting them again must not add them twice).
  std::map<std::pair<NodeRef, NodeRef>, uint64_t> requests;
  for (const auto& w : windows) {
    const int64_t seen = w.start_s + window_s;
    const std::string_view machine = w.key.Dim("machine"), instance = w.key.Dim("instance");
    switch (w.key.kind) {
      case EntityKind::kService:
      case EntityKind::kListener: {
        const NodeRef service{EntityKind::kService, std::string(w.key.Dim("service"))};
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
        const std::string_view caller = w.key.Dim("caller"), callee = w.key.Dim("callee");
        if (w.key.Dim("side") == "server") {
          // A named caller, a known host or a loopback peer: the client side reports the call.
          if (!stream::IsAddressHost(caller) || known_hosts.count(caller) || stream::IsLoopbackAddress(caller)) break;
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
        auto it = machine_of_address.find(stream::ListenerKey(callee, machine));
        const NodeRef peer = it != machine_of_address.end()
                                 ? NodeRef{EntityKind::kMachine, it->second}
                                 : NodeRef{EntityKind::kExternal, stream::ExternalName(callee)};
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

Status Topology::Save(const std::string& path) const {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.max_open_files = 64;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, path, &raw);
  std::unique_ptr<rocksdb::DB> db(raw);
  if (!s.ok()) return Internal("topology store " + path + ": " + s.ToString());
  rocksdb::WriteBatch batch;
  // Replace everything: a range deletion over all keys, then the current graph.
  s = batch.DeleteRange(db->DefaultColumnFamily(), "", "\xff");
  for (const NodeInfo& n : Nodes()) {
    s = batch.Put(NodeKey(n.ref),
                  std::to_string(n.first_seen_s) + " " + std::to_string(n.last_seen_s));
  }
  for (const EdgeInfo& e : Edges()) {
    s = batch.Put(EdgeKey(e.kind, e.from, e.to), std::to_string(e.first_seen_s) + " " +
                                                     std::to_string(e.last_seen_s) + " " +
                                                     std::to_string(e.requests));
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = db->Write(wo, &batch);
  if (!s.ok()) return Internal("topology store " + path + ": " + s.ToString());
  s = db->Close();
  if (!s.ok()) return Internal("topology store " + path + ": " + s.ToString());
  return Status::Ok();
}

Result<Topology> Topology::Load(const std::string& path) {
  rocksdb::Options options;
  options.max_open_files = 64;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(options, path, &raw);
  std::unique_ptr<rocksdb::DB> db(raw);
  if (s.IsNotFound() || (s.IsIOError() && s.ToString().find("No such file") != std::string::npos))
    return NotFound("topology store " + path + ": does not exist");
  if (!s.ok()) return Internal("topology store " + path + ": " + s.ToString());
  Topology t;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  // Nodes first, then edges, so that an edge never creates a node the store did not list.
  std::vector<std::pair<std::string, std::string>> edges;
  auto parse = [&](const std::string& key, const std::string& value, bool edge) -> Status {
    auto bad = [&](const std::string& what) {
      return InvalidArgument("topology store " + path + ": record \"" + key + "\": " + what);
    };
    // Fields split at '|', the last one (a name, or "from\0to") taking the rest.
    const size_t want = edge ? 5 : 3;
    std::vector<std::string_view> f;
    for (size_t pos = 0, next; pos <= key.size(); pos = next + 1) {
      next = f.size() + 1 == want ? std::string::npos : key.find('|', pos);
      if (next == std::string::npos) next = key.size();
      f.push_back(std::string_view(key).substr(pos, next - pos));
    }
    std::vector<int64_t> nums;
    for (size_t pos = 0, next; pos < value.size(); pos = next + 1) {
      next = std::min(value.find(' ', pos), value.size());
      int64_t v = 0;
      if (!ParseInt(std::string_view(value).substr(pos, next - pos), &v))
        return bad("value \"" + value + "\" is not numbers");
      nums.push_back(v);
    }
    // A node kind by name, or by its number in stores of the earlier layout.
    auto node_kind = [](std::string_view field) -> std::optional<EntityKind> {
      static constexpr EntityKind kLegacy[] = {EntityKind::kService, EntityKind::kInstance,
                                               EntityKind::kMachine, EntityKind::kExternal};
      int64_t n = 0;
      if (ParseInt(field, &n)) {
        if (n < 1 || n > 4) return std::nullopt;
        return kLegacy[n - 1];
      }
      auto k = ParseNodeKind(field);
      if (!k.ok()) return std::nullopt;
      return *k;
    };
    if (f.size() != want) return bad("unknown kind");
    if (!edge) {
      if (nums.size() != 2) return bad("a node holds first and last seen");
      const std::optional<EntityKind> kind = node_kind(f[1]);
      if (!kind) return bad("unknown kind");
      const NodeRef n{*kind, std::string(f[2])};
      t.ObserveNode(n, nums[0]);
      t.ObserveNode(n, nums[1]);
      return Status::Ok();
    }
    int64_t kind = 0;
    if (!ParseInt(f[1], &kind) || kind < 1 || kind > 4) return bad("unknown kind");
    const std::optional<EntityKind> fk = node_kind(f[2]), tk = node_kind(f[3]);
    const size_t nul = f[4].find('\0');
    if (!fk || !tk || nul == std::string_view::npos) return bad("not an edge record");
    if (nums.size() != 3 || nums[2] < 0) return bad("an edge holds first, last seen and requests");
    const NodeRef from{*fk, std::string(f[4].substr(0, nul))};
    const NodeRef to{*tk, std::string(f[4].substr(nul + 1))};
    if (!t.HasNode(from) || !t.HasNode(to)) return bad("an end of the edge is not stored");
    t.ObserveEdge(static_cast<EdgeKind>(kind), from, to, nums[0], static_cast<uint64_t>(nums[2]));
    t.ObserveEdge(static_cast<EdgeKind>(kind), from, to, nums[1]);
    return Status::Ok();
  };
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string key = it->key().ToString(), value = it->value().ToString();
    if (key.rfind("e|", 0) == 0) {
      edges.emplace_back(std::move(key), std::move(value));
    } else if (key.rfind("n|", 0) == 0) {
      FAULTLINE_RETURN_IF_ERROR(parse(key, value, false));
    } else {
      return InvalidArgument("topology store " + path + ": record \"" + key +
                             "\": not a node or edge record");
    }
  }
  if (!it->status().ok())
    return Internal("topology store " + path + ": " + it->status().ToString());
  for (const auto& [key, value] : edges) FAULTLINE_RETURN_IF_ERROR(parse(key, value, true));
  return t;
}

}  // namespace faultline::topology
