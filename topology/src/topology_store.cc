#include "faultline/topology/topology_store.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <charconv>
#include <optional>
#include <vector>

namespace faultline::topology {
namespace {

// The record layout: topology_store.h.
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

Status SaveTopology(const Topology& topology, const std::string& path) {
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
  for (const NodeInfo& n : topology.Nodes()) {
    s = batch.Put(NodeKey(n.ref),
                  std::to_string(n.first_seen_s) + " " + std::to_string(n.last_seen_s));
  }
  for (const EdgeInfo& e : topology.Edges()) {
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

Result<Topology> LoadTopology(const std::string& path) {
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
