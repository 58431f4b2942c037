// Fault trees: named fault classes ("packet loss on a call edge", "container CPU throttling",
// "the service's own code"), each a tree of gates over typed basic events about a located cause
// and the situation around it. Attribution says where; a fault tree says what kind of fault.
//
// A file (YAML):
//   version: 1
//   events:                            # optional: named nodes, used as {ref: NAME}
//     loss:
//       any:
//         - anomalous: {of: cause, metric: retransmits}
//         - anomalous: {of: cause, metric: drops}
//   classes:
//     - name: network_loss             # [a-z0-9_], unique across every file loaded
//       title: Packet loss on a call edge
//       description: what it means     # optional
//       action: what to do about it    # optional
//       priority: 80                   # 0..1000: ranks classes that hold together (higher first)
//       tree: {all: [{cause: edge}, {ref: loss}]}
//
// A node is a mapping with exactly one key:
//   gates      all: [NODE, …]   any: [NODE, …]   not: NODE   at_least: {k: K, of: [NODE, …]}
//              ref: NAME        (a named event of the same file)
//   basic events (the whole vocabulary):
//     cause: KIND | [KIND, …]   the located cause is a service, edge, instance, container or machine
//     anomalous: {of: ROLE, metric: M | family: F, direction: up|down|any|bad}
//                               some series of M (or of a metric of family F) of an entity in the
//                               role is anomalous that way (attribution's judgement, or a
//                               detector's verdict in the situation); `bad`, the default, is each
//                               metric's bad direction in the catalog
//     value: {of: ROLE, metric: M, above: X | below: X[, last: true]}
//                               the metric's value over the test period (its median) passes X
//     oom_kill: {of: ROLE}      an OOM kill was counted on an entity of the role in the test period
//     symptom: {metric: M | family: F, direction: …}
//                               the alarm that started the diagnosis is of this metric or family
//   ROLE (default cause): the located cause itself; entry (the alarmed service); caller (the
//   service before the cause on the propagation path; an edge's caller); callee (the services a
//   service calls; an edge's callee); downstream (every service reachable from the cause along
//   calls); edge (the call edge into the cause; an edge cause itself); instance, container,
//   machine (those of the cause: a service's instances, the containers they run in and the
//   machines under them; a container's instances and machine; a machine's containers and
//   instances; an edge's callee's).
//
// Loading checks everything and names the file, line and field of the first mistake and what was
// expected: unknown keys, kinds, roles, metrics (listing the known ones), families and
// directions; a metric that does not apply to the role's kind; k out of 1..n; a reference to no
// event; references that form a cycle; a named event no class uses; a class name used twice; and
// a class that can never hold whatever the cause is (for example a loss metric of a machine).
//
// Thread-safe to read after loading; a FaultTrees value is immutable.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/catalog.h"
#include "faultline/common/status.h"

namespace faultline::fta {

enum class Role : uint8_t {
  kCause,
  kEntry,
  kCaller,
  kCallee,
  kDownstream,
  kEdge,
  kInstance,
  kContainer,
  kMachine,
};
inline constexpr int kRoles = 9;
std::string_view RoleName(Role role);
// The kind of the entities a role names; nullopt for the cause (any kind).
std::optional<EntityKind> RoleKind(Role role);

// Which way a predicate wants its series to have moved: the metric's bad way (its Polarity), up,
// down, or either (a Direction, catalog.h, that a series moved is matched against it).
enum class DirectionMatch : uint8_t { kBad, kUp, kDown, kAny };
std::string_view DirectionName(DirectionMatch d);

enum class EventType : uint8_t { kCauseIs, kAnomalous, kValue, kOomKill, kSymptom };

struct BasicEvent {
  EventType type = EventType::kCauseIs;
  KindSet kinds;                 // kCauseIs
  Role of = Role::kCause;        // kAnomalous, kValue, kOomKill
  std::optional<Metric> metric;  // kAnomalous and kSymptom (or family), kValue
  std::optional<MetricFamily> family;
  DirectionMatch direction = DirectionMatch::kBad;
  std::optional<double> above, below;  // kValue: exactly one
  bool last = false;  // kValue: the test period's last window instead of its median
};

enum class NodeType : uint8_t { kAll, kAny, kNot, kAtLeast, kRef, kEvent };

struct Node {
  NodeType type = NodeType::kEvent;
  std::vector<Node> children;  // kAll, kAny, kAtLeast; kNot has one
  size_t k = 0;                // kAtLeast
  std::string ref;             // kRef: the event's name
  std::shared_ptr<const Node> target;  // kRef: the named node, resolved at load
  BasicEvent event;            // kEvent
  int line = 0;                // 1-based, in the file it came from
};

struct FaultClass {
  std::string name, title, description, action;
  int priority = 0;
  Node tree;
  std::string source;  // the file
  int line = 0;
};

struct FaultTrees {
  std::vector<FaultClass> classes;  // in the order loaded
  const FaultClass* Find(std::string_view name) const;
};

// Parses one file's text; `source` names it in errors ("trees.yaml:12: classes[0].tree.all[1]
// .anomalous.metric: unknown metric \"retransmit\" (known: …)").
Result<FaultTrees> ParseFaultTrees(std::string_view yaml, const std::string& source);
// A file, or every *.yaml / *.yml file of a directory (sorted by name; class names unique across
// them). Errors: kNotFound for a missing path or a directory without tree files; the parse errors.
Result<FaultTrees> LoadFaultTrees(const std::string& path);
// The default trees shipped in the binary (fta/trees/default.yaml in the repository).
const FaultTrees& DefaultFaultTrees();
std::string_view DefaultFaultTreesYaml();

// A one-line rendering of a node for explanations and listings, e.g.
// "all(cause is edge, any(retransmits of the cause up, drops of the cause up))".
std::string Describe(const Node& node);
std::string Describe(const BasicEvent& event);

}  // namespace faultline::fta
