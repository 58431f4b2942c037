#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "faultline/common/text.h"
#include "faultline/common/yaml_load.h"
#include "faultline/fta/fault_tree.h"

namespace faultline::fta {
namespace {

constexpr std::string_view kRoleNames[] = {"cause",   "entry",    "caller",    "callee", "downstream",
                                           "edge",    "instance", "container", "machine"};
constexpr std::string_view kDirectionNames[] = {"bad", "up", "down", "any"};
constexpr KindSet kCauseKinds{EntityKind::kService, EntityKind::kEdge, EntityKind::kInstance,
                              EntityKind::kContainer, EntityKind::kMachine};

std::string Join(std::initializer_list<std::string_view> names) {
  std::string out;
  for (std::string_view n : names) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

template <typename T, size_t N>
std::string JoinAll(const T (&names)[N]) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Tri-state truth for the "can this class ever hold" analysis.
enum class Tri : uint8_t { kFalse, kUnknown, kTrue };

class Loader {
 public:
  explicit Loader(const std::string& source) : source_(source) {}

  Result<FaultTrees> Load(std::string_view text) {
    YAML::Node root;
    FAULTLINE_RETURN_IF_ERROR(LoadYaml(text, source_, &root));
    try {
      return LoadRoot(root);
    } catch (const YAML::Exception& e) {
      return InvalidArgument(source_ + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
    }
  }

 private:
  Status Error(const YAML::Node& at, const std::string& path, const std::string& what) const {
    const int line = at.IsDefined() ? at.Mark().line + 1 : 1;
    return InvalidArgument(source_ + ":" + std::to_string(line) + ": " + path + ": " + what);
  }

  Status Keys(const YAML::Node& n, const std::string& path,
              std::initializer_list<std::string_view> known) const {
    for (const auto& kv : n) {
      const std::string key = kv.first.as<std::string>();
      if (std::find(known.begin(), known.end(), key) == known.end())
        return Error(kv.first, path, "unknown key '" + key + "' (expected " + Join(known) + ")");
    }
    return Status::Ok();
  }

  Result<std::string> Scalar(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) return Error(n, path, "expected a string");
    return n.as<std::string>();
  }

  Result<double> Number(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) return Error(n, path, "expected a number");
    const std::string text = n.as<std::string>();
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v) ||
        std::abs(v) >= 1e150)
      return Error(n, path, "expected a finite number, got '" + text + "'");
    return v;
  }

  Result<int64_t> Integer(const YAML::Node& n, const std::string& path, int64_t lo,
                          int64_t hi) const {
    const std::string expected =
        "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
    if (!n.IsScalar()) return Error(n, path, expected);
    const std::string text = n.as<std::string>();
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE || v < lo || v > hi)
      return Error(n, path, expected + ", got '" + text + "'");
    return static_cast<int64_t>(v);
  }

  Result<Role> ParseRole(const YAML::Node& n, const std::string& path) const {
    FAULTLINE_ASSIGN_OR_RETURN(std::string name, Scalar(n, path));
    for (int r = 0; r < kRoles; ++r)
      if (kRoleNames[r] == name) return static_cast<Role>(r);
    return Error(n, path, "unknown role '" + name + "' (known: " + JoinAll(kRoleNames) + ")");
  }

  Result<DirectionMatch> ParseDirection(const YAML::Node& n, const std::string& path) const {
    FAULTLINE_ASSIGN_OR_RETURN(std::string name, Scalar(n, path));
    for (int d = 0; d < 4; ++d)
      if (kDirectionNames[d] == name) return static_cast<DirectionMatch>(d);
    return Error(n, path, "unknown direction '" + name + "' (known: " + JoinAll(kDirectionNames) +
                              ")");
  }

  // metric: or family: (exactly one), checked against the role's kind when it has one.
  Status MetricOrFamily(const YAML::Node& n, const std::string& path, std::optional<Role> role,
                        BasicEvent* e) const {
    const bool m = static_cast<bool>(n["metric"]), f = static_cast<bool>(n["family"]);
    if (m == f) return Error(n, path, "give exactly one of 'metric' and 'family'");
    // The kind the role's entities have; the cause (any kind) is checked per kind later.
    const bool typed = role && RoleKind(*role).has_value();
    const EntityKind kind = typed ? *RoleKind(*role) : EntityKind::kService;
    if (m) {
      FAULTLINE_ASSIGN_OR_RETURN(std::string name, Scalar(n["metric"], path + ".metric"));
      auto metric = typed ? ParseMetricFor(name, kind) : ParseMetric(name);
      if (!metric.ok()) {
        std::string what = metric.status().message();
        if (typed) what += " (role " + std::string(RoleName(*role)) + ")";
        return Error(n["metric"], path + ".metric", what);
      }
      e->metric = *metric;
      return Status::Ok();
    }
    FAULTLINE_ASSIGN_OR_RETURN(std::string name, Scalar(n["family"], path + ".family"));
    auto family = ParseMetricFamily(name);
    if (!family.ok()) return Error(n["family"], path + ".family", family.status().message());
    e->family = *family;
    if (typed) {
      const EntityKind k = kind;
      bool any = false;
      for (const MetricInfo& mi : Metrics()) any = any || (mi.family == *family && mi.kinds.Has(k));
      if (!any) {
        return Error(n["family"], path + ".family",
                     "no " + name + " metric applies to the " + std::string(RoleName(*role)) +
                         " (a " + std::string(EntityKindName(k)) + ")");
      }
    }
    return Status::Ok();
  }

  Result<BasicEvent> ParseEvent(const std::string& key, const YAML::Node& v,
                                const std::string& path) const {
    BasicEvent e;
    if (key == "cause") {
      e.type = EventType::kCauseIs;
      std::vector<YAML::Node> items;
      if (v.IsSequence()) {
        if (v.size() == 0) return Error(v, path, "expected at least one kind");
        for (const auto& item : v) items.push_back(item);
      } else {
        items.push_back(v);
      }
      for (size_t i = 0; i < items.size(); ++i) {
        const std::string ipath = v.IsSequence() ? path + "[" + std::to_string(i) + "]" : path;
        FAULTLINE_ASSIGN_OR_RETURN(std::string name, Scalar(items[i], ipath));
        auto kind = ParseEntityKind(name, kCauseKinds);
        if (!kind.ok()) return Error(items[i], ipath, kind.status().message());
        e.kinds = e.kinds | KindSet{*kind};
      }
      return e;
    }
    if (key == "symptom") {
      e.type = EventType::kSymptom;
      if (!v.IsMap()) return Error(v, path, "expected a mapping with metric or family");
      FAULTLINE_RETURN_IF_ERROR(Keys(v, path, {"metric", "family", "direction"}));
      FAULTLINE_RETURN_IF_ERROR(MetricOrFamily(v, path, std::nullopt, &e));
      if (v["direction"]) {
        FAULTLINE_ASSIGN_OR_RETURN(e.direction, ParseDirection(v["direction"], path + ".direction"));
      }
      return e;
    }
    if (!v.IsMap()) return Error(v, path, "expected a mapping");
    if (v["of"]) {
      FAULTLINE_ASSIGN_OR_RETURN(e.of, ParseRole(v["of"], path + ".of"));
    }
    const std::optional<Role> checked =
        e.of == Role::kCause ? std::nullopt : std::optional<Role>(e.of);
    if (key == "anomalous") {
      e.type = EventType::kAnomalous;
      FAULTLINE_RETURN_IF_ERROR(Keys(v, path, {"of", "metric", "family", "direction"}));
      FAULTLINE_RETURN_IF_ERROR(MetricOrFamily(v, path, checked, &e));
      if (v["direction"]) {
        FAULTLINE_ASSIGN_OR_RETURN(e.direction, ParseDirection(v["direction"], path + ".direction"));
      }
      return e;
    }
    if (key == "value") {
      e.type = EventType::kValue;
      FAULTLINE_RETURN_IF_ERROR(Keys(v, path, {"of", "metric", "above", "below", "last"}));
      if (!v["metric"]) return Error(v, path, "'metric' is required");
      FAULTLINE_RETURN_IF_ERROR(MetricOrFamily(v, path, checked, &e));
      if (static_cast<bool>(v["above"]) == static_cast<bool>(v["below"]))
        return Error(v, path, "give exactly one of 'above' and 'below'");
      if (v["above"]) {
        FAULTLINE_ASSIGN_OR_RETURN(e.above, Number(v["above"], path + ".above"));
      } else {
        FAULTLINE_ASSIGN_OR_RETURN(e.below, Number(v["below"], path + ".below"));
      }
      if (v["last"]) {
        const std::string text = v["last"].IsScalar() ? v["last"].as<std::string>() : "";
        if (text != "true" && text != "false")
          return Error(v["last"], path + ".last", "expected true or false, got '" + text + "'");
        e.last = text == "true";
      }
      return e;
    }
    // oom_kill
    e.type = EventType::kOomKill;
    FAULTLINE_RETURN_IF_ERROR(Keys(v, path, {"of"}));
    if (e.of != Role::kCause && e.of != Role::kContainer && e.of != Role::kMachine)
      return Error(v["of"], path + ".of", "OOM kills are counted on the cause, container or machine");
    return e;
  }

  Result<Node> ParseNode(const YAML::Node& y, const std::string& path) {
    if (!y.IsMap() || y.size() != 1) {
      return Error(y, path,
                   "expected a mapping with one key: all, any, not, at_least, ref, cause, "
                   "anomalous, value, oom_kill or symptom");
    }
    const auto kv = *y.begin();
    const std::string key = kv.first.as<std::string>();
    const YAML::Node v = kv.second;
    const std::string sub = path + "." + key;
    Node n;
    n.line = kv.first.Mark().line + 1;
    if (key == "all" || key == "any") {
      n.type = key == "all" ? NodeType::kAll : NodeType::kAny;
      if (!v.IsSequence() || v.size() == 0) return Error(v, sub, "expected a list of nodes");
      for (size_t i = 0; i < v.size(); ++i) {
        FAULTLINE_ASSIGN_OR_RETURN(Node child, ParseNode(v[i], sub + "[" + std::to_string(i) + "]"));
        n.children.push_back(std::move(child));
      }
      return n;
    }
    if (key == "not") {
      n.type = NodeType::kNot;
      FAULTLINE_ASSIGN_OR_RETURN(Node child, ParseNode(v, sub));
      n.children.push_back(std::move(child));
      return n;
    }
    if (key == "at_least") {
      n.type = NodeType::kAtLeast;
      if (!v.IsMap()) return Error(v, sub, "expected {k: K, of: [NODE, …]}");
      FAULTLINE_RETURN_IF_ERROR(Keys(v, sub, {"k", "of"}));
      const YAML::Node of = v["of"];
      if (!of || !of.IsSequence() || of.size() == 0)
        return Error(of ? of : v, sub + ".of", "expected a list of nodes");
      if (!v["k"]) return Error(v, sub, "'k' is required");
      FAULTLINE_ASSIGN_OR_RETURN(int64_t k, Integer(v["k"], sub + ".k", 1,
                                                    static_cast<int64_t>(of.size())));
      n.k = static_cast<size_t>(k);
      for (size_t i = 0; i < of.size(); ++i) {
        FAULTLINE_ASSIGN_OR_RETURN(Node child,
                                   ParseNode(of[i], sub + ".of[" + std::to_string(i) + "]"));
        n.children.push_back(std::move(child));
      }
      return n;
    }
    if (key == "ref") {
      n.type = NodeType::kRef;
      FAULTLINE_ASSIGN_OR_RETURN(n.ref, Scalar(v, sub));
      if (!yaml_events_.count(n.ref)) {
        std::string known;
        for (const auto& [name, node] : yaml_events_) known += (known.empty() ? "" : ", ") + name;
        return Error(v, sub, "no event named '" + n.ref + "' (events: " +
                                 (known.empty() ? "none" : known) + ")");
      }
      refs_.push_back(n.ref);
      return n;
    }
    if (key == "cause" || key == "anomalous" || key == "value" || key == "oom_kill" ||
        key == "symptom") {
      n.type = NodeType::kEvent;
      FAULTLINE_ASSIGN_OR_RETURN(n.event, ParseEvent(key, v, sub));
      return n;
    }
    return Error(kv.first, path,
                 "unknown node '" + key +
                     "' (expected all, any, not, at_least, ref, cause, anomalous, value, "
                     "oom_kill or symptom)");
  }

  // Whether the tree can hold for a cause of `kind` (kFalse: never).
  Tri Possible(const Node& n, EntityKind kind) const {
    switch (n.type) {
      case NodeType::kAll: {
        Tri out = Tri::kTrue;
        for (const Node& c : n.children) out = std::min(out, Possible(c, kind));
        return out;
      }
      case NodeType::kAny: {
        Tri out = Tri::kFalse;
        for (const Node& c : n.children) out = std::max(out, Possible(c, kind));
        return out;
      }
      case NodeType::kNot: {
        const Tri c = Possible(n.children[0], kind);
        return c == Tri::kTrue ? Tri::kFalse : c == Tri::kFalse ? Tri::kTrue : Tri::kUnknown;
      }
      case NodeType::kAtLeast: {
        size_t yes = 0, maybe = 0;
        for (const Node& c : n.children) {
          const Tri t = Possible(c, kind);
          yes += t == Tri::kTrue, maybe += t == Tri::kUnknown;
        }
        return yes >= n.k ? Tri::kTrue : yes + maybe < n.k ? Tri::kFalse : Tri::kUnknown;
      }
      case NodeType::kRef:
        return Possible(*named_.at(n.ref), kind);
      case NodeType::kEvent:
        return PossibleEvent(n.event, kind);
    }
    return Tri::kUnknown;
  }

  static Tri PossibleEvent(const BasicEvent& e, EntityKind kind) {
    if (e.type == EventType::kCauseIs) return e.kinds.Has(kind) ? Tri::kTrue : Tri::kFalse;
    if (e.type == EventType::kSymptom) return Tri::kUnknown;
    // Roles that only a service or an edge has.
    if ((e.of == Role::kCallee || e.of == Role::kDownstream || e.of == Role::kEdge) &&
        kind != EntityKind::kService && kind != EntityKind::kEdge)
      return Tri::kFalse;
    const EntityKind of = e.of == Role::kCause ? kind : *RoleKind(e.of);
    if (e.type == EventType::kOomKill) return Info(Metric::kOomKills).kinds.Has(of) ? Tri::kUnknown : Tri::kFalse;
    if (e.metric) return Info(*e.metric).kinds.Has(of) ? Tri::kUnknown : Tri::kFalse;
    for (const MetricInfo& m : Metrics())
      if (m.family == *e.family && m.kinds.Has(of)) return Tri::kUnknown;
    return Tri::kFalse;
  }

  void Link(Node* n) {
    if (n->type == NodeType::kRef) n->target = named_.at(n->ref);
    for (Node& c : n->children) Link(&c);
  }

  static void RefsOf(const Node& n, std::vector<std::string>* out) {
    if (n.type == NodeType::kRef) out->push_back(n.ref);
    for (const Node& c : n.children) RefsOf(c, out);
  }

  Result<FaultTrees> LoadRoot(const YAML::Node& root) {
    if (!root.IsMap())
      return Error(root, "top level", "expected a mapping with 'version' and 'classes'");
    FAULTLINE_RETURN_IF_ERROR(Keys(root, "top level", {"version", "events", "classes"}));
    if (!root["version"]) return Error(root, "version", "required (1)");
    FAULTLINE_ASSIGN_OR_RETURN(int64_t version, Integer(root["version"], "version", 1, 1));
    (void)version;

    const YAML::Node events = root["events"];
    if (events) {
      if (!events.IsMap()) return Error(events, "events", "expected a mapping of names to nodes");
      for (const auto& kv : events) {
        const std::string name = kv.first.as<std::string>();
        if (!ValidName(name))
          return Error(kv.first, "events", "'" + name + "': names are 1-64 of [a-z0-9_]");
        yaml_events_[name] = kv.second;
        event_lines_[name] = kv.first.Mark().line + 1;
      }
      for (const auto& [name, y] : yaml_events_) {
        const size_t before = refs_.size();
        FAULTLINE_ASSIGN_OR_RETURN(Node n, ParseNode(y, "events." + name));
        refs_.resize(before);  // what events use does not make them used by a class
        named_[name] = std::make_shared<Node>(std::move(n));
      }
    }
    // Cycles among named events.
    std::map<std::string, int> state;  // 1: on the path, 2: done
    std::vector<std::string> stack;
    std::function<Status(const std::string&)> visit = [&](const std::string& name) -> Status {
      state[name] = 1;
      stack.push_back(name);
      std::vector<std::string> refs;
      RefsOf(*named_.at(name), &refs);
      for (const std::string& r : refs) {
        if (state[r] == 1) {
          std::string cycle;
          auto from = std::find(stack.begin(), stack.end(), r);
          for (auto it = from; it != stack.end(); ++it) cycle += *it + " -> ";
          return InvalidArgument(source_ + ":" + std::to_string(event_lines_[r]) + ": events." +
                                 r + ": refers to itself through " + cycle + r);
        }
        if (state[r] == 0) FAULTLINE_RETURN_IF_ERROR(visit(r));
      }
      stack.pop_back();
      state[name] = 2;
      return Status::Ok();
    };
    for (const auto& [name, node] : named_)
      if (state[name] == 0) FAULTLINE_RETURN_IF_ERROR(visit(name));
    for (auto& [name, node] : named_) Link(node.get());

    const YAML::Node classes = root["classes"];
    if (!classes || !classes.IsSequence() || classes.size() == 0)
      return Error(classes ? classes : root, "classes", "required, a list of fault classes");
    FaultTrees out;
    std::set<std::string> used;
    for (size_t i = 0; i < classes.size(); ++i) {
      const YAML::Node c = classes[i];
      const std::string path = "classes[" + std::to_string(i) + "]";
      if (!c.IsMap()) return Error(c, path, "expected a mapping");
      FAULTLINE_RETURN_IF_ERROR(
          Keys(c, path, {"name", "title", "description", "action", "priority", "tree"}));
      FaultClass fc;
      fc.source = source_;
      fc.line = c.Mark().line + 1;
      for (const char* required : {"name", "title", "tree"})
        if (!c[required]) return Error(c, path, std::string("'") + required + "' is required");
      FAULTLINE_ASSIGN_OR_RETURN(fc.name, Scalar(c["name"], path + ".name"));
      if (!ValidName(fc.name))
        return Error(c["name"], path + ".name", "'" + fc.name + "': names are 1-64 of [a-z0-9_]");
      if (out.Find(fc.name))
        return Error(c["name"], path + ".name", "a second class named '" + fc.name + "'");
      FAULTLINE_ASSIGN_OR_RETURN(fc.title, Scalar(c["title"], path + ".title"));
      if (c["description"]) {
        FAULTLINE_ASSIGN_OR_RETURN(fc.description, Scalar(c["description"], path + ".description"));
      }
      if (c["action"]) {
        FAULTLINE_ASSIGN_OR_RETURN(fc.action, Scalar(c["action"], path + ".action"));
      }
      fc.priority = 50;
      if (c["priority"]) {
        FAULTLINE_ASSIGN_OR_RETURN(int64_t p, Integer(c["priority"], path + ".priority", 0, 1000));
        fc.priority = static_cast<int>(p);
      }
      refs_.clear();
      FAULTLINE_ASSIGN_OR_RETURN(fc.tree, ParseNode(c["tree"], path + ".tree"));
      // Every event reachable from the class counts as used.
      std::vector<std::string> todo = refs_;
      while (!todo.empty()) {
        const std::string r = todo.back();
        todo.pop_back();
        if (!used.insert(r).second) continue;
        RefsOf(*named_.at(r), &todo);
      }
      Link(&fc.tree);
      bool possible = false;
      for (EntityKind k : {EntityKind::kService, EntityKind::kEdge, EntityKind::kInstance,
                           EntityKind::kContainer, EntityKind::kMachine}) {
        possible = possible || Possible(fc.tree, k) != Tri::kFalse;
      }
      if (!possible) {
        return Error(c["tree"], path + ".tree",
                     "class '" + fc.name +
                         "' can never hold: no kind of cause satisfies it (check its cause: "
                         "events and which kinds the metrics it names apply to)");
      }
      out.classes.push_back(std::move(fc));
    }
    for (const auto& [name, line] : event_lines_) {
      if (!used.count(name)) {
        return InvalidArgument(source_ + ":" + std::to_string(line) + ": events." + name +
                               ": defined but no class uses it");
      }
    }
    return out;
  }

  const std::string& source_;
  std::map<std::string, YAML::Node> yaml_events_;
  std::map<std::string, int> event_lines_;
  std::map<std::string, std::shared_ptr<Node>> named_;
  std::vector<std::string> refs_;  // refs met while parsing the current class
};

std::string Quantity(const BasicEvent& e) {
  if (e.metric) return std::string(MetricName(*e.metric));
  const std::string f(MetricFamilyName(*e.family));
  return (std::string_view("aeiou").find(f[0]) != std::string_view::npos ? "an " : "a ") + f +
         " metric";
}

std::string DirectionWord(DirectionMatch d) {
  switch (d) {
    case DirectionMatch::kUp:
      return "up";
    case DirectionMatch::kDown:
      return "down";
    case DirectionMatch::kAny:
      return "anomalous either way";
    case DirectionMatch::kBad:
      break;
  }
  return "anomalous";
}

std::string Fixed(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

}  // namespace

std::string_view RoleName(Role role) { return kRoleNames[static_cast<int>(role)]; }

std::optional<EntityKind> RoleKind(Role role) {
  switch (role) {
    case Role::kCause:
      return std::nullopt;
    case Role::kEntry:
    case Role::kCaller:
    case Role::kCallee:
    case Role::kDownstream:
      return EntityKind::kService;
    case Role::kEdge:
      return EntityKind::kEdge;
    case Role::kInstance:
      return EntityKind::kInstance;
    case Role::kContainer:
      return EntityKind::kContainer;
    case Role::kMachine:
      return EntityKind::kMachine;
  }
  return std::nullopt;
}

std::string_view DirectionName(DirectionMatch d) { return kDirectionNames[static_cast<int>(d)]; }

const FaultClass* FaultTrees::Find(std::string_view name) const {
  for (const FaultClass& c : classes)
    if (c.name == name) return &c;
  return nullptr;
}

Result<FaultTrees> ParseFaultTrees(std::string_view yaml, const std::string& source) {
  return Loader(source).Load(yaml);
}

Result<FaultTrees> LoadFaultTrees(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> files;
  if (fs::is_directory(path, ec)) {
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      const std::string ext = entry.path().extension().string();
      if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml"))
        files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) return NotFound(path + ": no fault tree files (*.yaml, *.yml)");
  } else if (fs::exists(path, ec)) {
    files.push_back(path);
  } else {
    return NotFound(path + ": no such file or directory");
  }
  FaultTrees all;
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return NotFound(file + ": cannot open");
    std::stringstream text;
    text << in.rdbuf();
    FAULTLINE_ASSIGN_OR_RETURN(FaultTrees one, ParseFaultTrees(text.str(), file));
    for (FaultClass& c : one.classes) {
      if (const FaultClass* other = all.Find(c.name)) {
        return InvalidArgument(file + ":" + std::to_string(c.line) + ": class '" + c.name +
                               "' is also defined in " + other->source + ":" +
                               std::to_string(other->line));
      }
      all.classes.push_back(std::move(c));
    }
  }
  return all;
}

const FaultTrees& DefaultFaultTrees() {
  static const FaultTrees trees = [] {
    auto parsed = ParseFaultTrees(DefaultFaultTreesYaml(), "default.yaml (built in)");
    if (!parsed.ok()) {
      // The build checks the shipped file (fta_trees_test); a broken one cannot run.
      std::fprintf(stderr, "faultline: the built-in fault trees: %s\n",
                   parsed.status().message().c_str());
      std::abort();
    }
    return std::move(*parsed);
  }();
  return trees;
}

std::string Describe(const BasicEvent& e) {
  const std::string of = std::string(RoleName(e.of));
  switch (e.type) {
    case EventType::kCauseIs: {
      const std::string kinds = e.kinds.Describe();
      const bool vowel = !kinds.empty() && std::string_view("aeiou").find(kinds[0]) != std::string_view::npos;
      return std::string("the cause is ") + (vowel ? "an " : "a ") + kinds;
    }
    case EventType::kAnomalous:
      return Quantity(e) + " of the " + of + " " + DirectionWord(e.direction);
    case EventType::kValue:
      return Quantity(e) + " of the " + of + (e.last ? " in the last window" : "") +
             (e.above ? " above " + Fixed(*e.above) : " below " + Fixed(*e.below));
    case EventType::kOomKill:
      return "an OOM kill on the " + of;
    case EventType::kSymptom:
      return "the alarm is " + Quantity(e) +
             (e.direction == DirectionMatch::kBad ? "" : " " + DirectionWord(e.direction));
  }
  return "?";
}

std::string Describe(const Node& n) {
  auto list = [&](const std::string& head) {
    std::string out = head + "(";
    for (size_t i = 0; i < n.children.size(); ++i)
      out += (i ? ", " : "") + Describe(n.children[i]);
    return out + ")";
  };
  switch (n.type) {
    case NodeType::kAll:
      return list("all");
    case NodeType::kAny:
      return list("any");
    case NodeType::kNot:
      return "not " + Describe(n.children[0]);
    case NodeType::kAtLeast:
      return list("at least " + std::to_string(n.k) + " of ");
    case NodeType::kRef:
      return n.ref;
    case NodeType::kEvent:
      return Describe(n.event);
  }
  return "?";
}

}  // namespace faultline::fta
