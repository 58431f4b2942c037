#include "faultline/fta/fault_tree.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace faultline::fta {
namespace {

std::string Error(const std::string& yaml) {
  auto t = ParseFaultTrees(yaml, "t.yaml");
  return t.ok() ? "loaded" : t.status().message();
}

// A file with one class whose tree is `tree` (a flow mapping) and optional named events.
std::string One(const std::string& tree, const std::string& events = "") {
  return "version: 1\n" + (events.empty() ? "" : "events:\n" + events) +
         "classes:\n  - name: c\n    title: C\n    tree: " + tree + "\n";
}

TEST(FaultTreeLoader, AGoodFileLoadsWithItsNamedEventsResolved) {
  auto t = ParseFaultTrees(One("{all: [{cause: edge}, {ref: loss}]}",
                               "  loss: {any: [{anomalous: {metric: retransmits}}, "
                               "{anomalous: {metric: drops, direction: up}}]}\n"),
                           "t.yaml");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->classes.size(), 1u);
  const FaultClass& c = t->classes[0];
  EXPECT_EQ(c.name, "c");
  EXPECT_EQ(c.priority, 50);
  EXPECT_EQ(c.line, 5);
  EXPECT_EQ(c.source, "t.yaml");
  ASSERT_EQ(c.tree.children.size(), 2u);
  const Node& ref = c.tree.children[1];
  EXPECT_EQ(ref.type, NodeType::kRef);
  ASSERT_NE(ref.target, nullptr);
  EXPECT_EQ(ref.target->type, NodeType::kAny);
  EXPECT_EQ(Describe(c.tree), "all(the cause is an edge, loss)");
  EXPECT_EQ(Describe(*ref.target),
            "any(retransmits of the cause anomalous, drops of the cause up)");
}

TEST(FaultTreeLoader, EachKindOfMistakeIsNamedWithItsLineAndField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a: [", "t.yaml:1: not valid YAML: end of sequence flow not found"},
      {"- 1\n", "t.yaml:1: top level: expected a mapping with 'version' and 'classes'"},
      {"version: 1\nclasses: []\nextra: 1\n",
       "t.yaml:3: top level: unknown key 'extra' (expected version, events, classes)"},
      {"classes: []\n", "t.yaml:1: version: required (1)"},
      {"version: 2\nclasses: []\n", "t.yaml:1: version: expected an integer in 1..1, got '2'"},
      {"version: 1\nclasses: []\n", "t.yaml:2: classes: required, a list of fault classes"},
      {"version: 1\nclasses:\n  - title: X\n    tree: {cause: edge}\n",
       "t.yaml:3: classes[0]: 'name' is required"},
      {"version: 1\nclasses:\n  - name: Bad-Name\n    title: X\n    tree: {cause: edge}\n",
       "t.yaml:3: classes[0].name: 'Bad-Name': names are 1-64 of [a-z0-9_]"},
      {"version: 1\nclasses:\n  - {name: a, title: A, tree: {cause: edge}}\n"
       "  - {name: a, title: B, tree: {cause: machine}}\n",
       "t.yaml:4: classes[1].name: a second class named 'a'"},
      {"version: 1\nclasses:\n  - {name: a, title: A, tree: {cause: edge}, color: red}\n",
       "t.yaml:3: classes[0]: unknown key 'color' (expected name, title, description, action, "
       "priority, tree)"},
      {"version: 1\nclasses:\n  - {name: a, title: A, priority: 1001, tree: {cause: edge}}\n",
       "t.yaml:3: classes[0].priority: expected an integer in 0..1000, got '1001'"},
      {One("{cause: edge, any: []}"),
       "t.yaml:5: classes[0].tree: expected a mapping with one key: all, any, not, at_least, "
       "ref, cause, anomalous, value, oom_kill or symptom"},
      {One("{maybe: []}"),
       "t.yaml:5: classes[0].tree: unknown node 'maybe' (expected all, any, not, at_least, ref, "
       "cause, anomalous, value, oom_kill or symptom)"},
      {One("{all: []}"), "t.yaml:5: classes[0].tree.all: expected a list of nodes"},
      {One("{at_least: {k: 3, of: [{cause: edge}, {cause: service}]}}"),
       "t.yaml:5: classes[0].tree.at_least.k: expected an integer in 1..2, got '3'"},
      {One("{at_least: {of: [{cause: edge}]}}"), "t.yaml:5: classes[0].tree.at_least: 'k' is required"},
      {One("{ref: lost}", "  loss: {cause: edge}\n"),
       "t.yaml:7: classes[0].tree.ref: no event named 'lost' (events: loss)"},
      {One("{ref: a}", "  a: {any: [{ref: b}]}\n  b: {all: [{cause: edge}, {ref: a}]}\n"),
       "t.yaml:3: events.a: refers to itself through a -> b -> a"},
      {One("{cause: edge}", "  spare: {cause: machine}\n"),
       "t.yaml:3: events.spare: defined but no class uses it"},
      {One("{anomalous: {metric: retransmit}}"),
       "t.yaml:5: classes[0].tree.anomalous.metric: unknown metric \"retransmit\" (known: " +
           KnownMetricNames() + ")"},
      {One("{anomalous: {of: machine, metric: retransmits}}"),
       "t.yaml:5: classes[0].tree.anomalous.metric: metric \"retransmits\" does not apply to a "
       "machine (it applies to edge; metrics of a machine: " +
           KnownMetricNames(EntityKind::kMachine) + ") (role machine)"},
      {One("{anomalous: {family: disk}}"),
       "t.yaml:5: classes[0].tree.anomalous.family: unknown metric family \"disk\" (known: "
       "traffic, errors, latency, network, cpu, memory, io, agent)"},
      {One("{anomalous: {of: callee, family: network}}"),
       "t.yaml:5: classes[0].tree.anomalous.family: no network metric applies to the callee (a "
       "service)"},
      {One("{anomalous: {metric: drops, family: network}}"),
       "t.yaml:5: classes[0].tree.anomalous: give exactly one of 'metric' and 'family'"},
      {One("{anomalous: {of: neighbour, metric: drops}}"),
       "t.yaml:5: classes[0].tree.anomalous.of: unknown role 'neighbour' (known: cause, entry, "
       "caller, callee, downstream, edge, instance, container, machine)"},
      {One("{anomalous: {metric: drops, direction: sideways}}"),
       "t.yaml:5: classes[0].tree.anomalous.direction: unknown direction 'sideways' (known: bad, "
       "up, down, any)"},
      {One("{anomalous: {metric: drops, by: 2}}"),
       "t.yaml:5: classes[0].tree.anomalous: unknown key 'by' (expected of, metric, family, "
       "direction)"},
      {One("{cause: listener}"),
       "t.yaml:5: classes[0].tree.cause: kind \"listener\": expected service, edge, machine, "
       "instance or container"},
      {One("{cause: [edge, pod]}"),
       "t.yaml:5: classes[0].tree.cause[1]: kind \"pod\": expected service, edge, machine, "
       "instance or container"},
      {One("{value: {metric: error_rate}}"),
       "t.yaml:5: classes[0].tree.value: give exactly one of 'above' and 'below'"},
      {One("{value: {metric: error_rate, above: lots}}"),
       "t.yaml:5: classes[0].tree.value.above: expected a finite number, got 'lots'"},
      {One("{value: {family: errors, above: 1}}"),
       "t.yaml:5: classes[0].tree.value: unknown key 'family' (expected of, metric, above, below, "
       "last)"},
      {One("{value: {metric: requests, below: 1, last: yes please}}"),
       "t.yaml:5: classes[0].tree.value.last: expected true or false, got 'yes please'"},
      {One("{value: {above: 1}}"), "t.yaml:5: classes[0].tree.value: 'metric' is required"},
      {One("{oom_kill: {of: callee}}"),
       "t.yaml:5: classes[0].tree.oom_kill.of: OOM kills are counted on the cause, container or "
       "machine"},
      {One("{all: [{cause: machine}, {anomalous: {of: cause, metric: retransmits}}]}"),
       "t.yaml:5: classes[0].tree: class 'c' can never hold: no kind of cause satisfies it "
       "(check its cause: events and which kinds the metrics it names apply to)"},
      {One("{all: [{cause: machine}, {anomalous: {of: callee, metric: latency_p99_ms}}]}"),
       "t.yaml:5: classes[0].tree: class 'c' can never hold: no kind of cause satisfies it "
       "(check its cause: events and which kinds the metrics it names apply to)"},
      {One("{not: {any: [{cause: service}, {cause: edge}, {cause: machine}, {cause: container}, "
           "{cause: instance}]}}"),
       "t.yaml:5: classes[0].tree: class 'c' can never hold: no kind of cause satisfies it "
       "(check its cause: events and which kinds the metrics it names apply to)"},
      {"version: 1\nclasses: " + std::string(300, '[') + "\n", "t.yaml:2: nested deeper than 200 levels"},
  };
  for (const auto& [yaml, message] : cases) EXPECT_EQ(Error(yaml), message) << yaml;
}

TEST(FaultTreeLoader, WhatCanHoldIsNotRefused) {
  // Possible for some kind, even if not for all; a `not` of an impossible event always holds.
  EXPECT_EQ(Error(One("{any: [{cause: machine}, {anomalous: {of: cause, metric: retransmits}}]}")),
            "loaded");
  EXPECT_EQ(Error(One("{all: [{cause: machine}, {not: {anomalous: {metric: retransmits}}}]}")),
            "loaded");
  EXPECT_EQ(Error(One("{symptom: {family: latency, direction: up}}")), "loaded");
  EXPECT_EQ(Error(One("{at_least: {k: 1, of: [{cause: edge}]}}")), "loaded");
}

TEST(FaultTreeLoader, DirectoriesLoadEveryTreeFileAndRefuseAClassDefinedTwice) {
  namespace fs = std::filesystem;
  const std::string dir = testing::TempDir() + "/fta_dir";
  fs::remove_all(dir);
  fs::create_directories(dir);
  EXPECT_EQ(LoadFaultTrees(dir).status().message(), dir + ": no fault tree files (*.yaml, *.yml)");
  EXPECT_EQ(LoadFaultTrees(dir + "/nope").status().code(), StatusCode::kNotFound);
  std::ofstream(dir + "/a.yaml") << "version: 1\nclasses:\n  - {name: a, title: A, tree: {cause: edge}}\n";
  std::ofstream(dir + "/b.yml") << "version: 1\nclasses:\n  - {name: b, title: B, tree: {cause: machine}}\n";
  std::ofstream(dir + "/notes.txt") << "not a tree";
  auto t = LoadFaultTrees(dir);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->classes.size(), 2u);
  EXPECT_EQ(t->classes[0].name, "a");
  EXPECT_EQ(t->classes[1].source, dir + "/b.yml");
  std::ofstream(dir + "/c.yaml") << "version: 1\nclasses:\n  - {name: a, title: A2, tree: {cause: service}}\n";
  EXPECT_EQ(LoadFaultTrees(dir).status().message(),
            dir + "/c.yaml:3: class 'a' is also defined in " + dir + "/a.yaml:3");
  fs::remove_all(dir);
}

TEST(FaultTreeLoader, TheDefaultTreesLoadAndCoverEveryFaultTheLabInjects) {
  const FaultTrees& t = DefaultFaultTrees();
  for (const char* name :
       {"connection_refused", "network_loss", "network_latency", "slow_downstream",
        "error_propagation", "oom_kill", "memory_pressure", "container_cpu_throttling",
        "machine_cpu_saturation", "cpu_consumption", "cpu_contention", "disk_io_latency",
        "traffic_surge", "service_unavailable", "own_code"}) {
    const FaultClass* c = t.Find(name);
    ASSERT_NE(c, nullptr) << name;
    EXPECT_FALSE(c->title.empty());
    EXPECT_FALSE(c->description.empty()) << name;
    EXPECT_FALSE(c->action.empty()) << name;
  }
  EXPECT_EQ(t.classes.size(), 15u);
  EXPECT_EQ(t.Find("nope"), nullptr);
}

}  // namespace
}  // namespace faultline::fta
