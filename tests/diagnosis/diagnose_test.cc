// Diagnose on the recorded situations of tests/data/situations: the incident's identity,
// phenomenon, impact, severity, propagation, drill-down and renderings.
#include "faultline/diagnosis/diagnose.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace faultline::diagnosis {
namespace {

topology::Situation Load(const std::string& name) {
  const std::string path = std::string(FAULTLINE_SOURCE_DIR) + "/tests/data/situations/" + name;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  auto s = topology::ParseSituationJson(text.str(), name);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : topology::Situation{};
}

Incident Incident_(const std::string& name) {
  DiagnoseOptions o;
  o.situation_source = name;
  Diagnosis d = Diagnose(Load(name), fta::DefaultFaultTrees(), o);
  EXPECT_TRUE(d.incident) << name << ": " << d.reason;
  return d.incident ? std::move(*d.incident) : Incident{};
}

TEST(Diagnose, PacketLossOnAnEdgeIsOneExplainedIncident) {
  const Incident i = Incident_("edge_loss.json");
  EXPECT_EQ(i.dedup_key, "service:gateway|edge:gateway->api");
  EXPECT_EQ(i.fingerprint, StableHash(i.dedup_key));
  EXPECT_EQ(i.id, "fl-" + StableHash(i.dedup_key + "@1120"));
  EXPECT_EQ(i.status, IncidentStatus::kOpen);
  EXPECT_EQ(i.sequence, 1u);
  EXPECT_EQ(i.opened_at_s, 1120);
  EXPECT_EQ(i.severity, Severity::kError);  // latency 4.4x
  EXPECT_EQ(i.title, "Packet loss on a call edge at edge gateway->api: gateway latency_p99_ms rose");
  EXPECT_EQ(i.summary.rfind("Packet loss on a call edge at edge gateway->api (latency_p99_ms 44.1 ms "
                            "-> 255 ms, retransmits 0 -> 30.5, drops 0 -> 11.9) raised gateway "
                            "latency_p99_ms from 59.6 ms to 261 ms through gateway->api -> gateway. "
                            "Check the network path",
                            0),
            0u)
      << i.summary;
  EXPECT_EQ(i.phenomenon.entry, (EntityRef{EntityKind::kService, "gateway"}));
  EXPECT_EQ(i.phenomenon.change.metric, Metric::kLatencyP99Ms);
  EXPECT_NEAR(i.phenomenon.change_ratio, 4.38, 0.01);
  EXPECT_EQ(i.phenomenon.change.since_s, 1120);
  // All of gateway's requests go through gateway->api (500 of 500 per window).
  EXPECT_EQ(i.phenomenon.impact.basis, "path");
  EXPECT_NEAR(i.phenomenon.impact.share, 1, 0.05);
  ASSERT_EQ(i.root_causes.size(), 1u);
  EXPECT_EQ(i.root_causes[0].classes.size(), 1u);
  EXPECT_EQ(i.fault_tree.fault_class, "network_loss");
  EXPECT_TRUE(i.fault_tree.tree.held);
  EXPECT_EQ(i.fault_tree.tree.type, "all");
  EXPECT_EQ(i.fault_tree.not_held.size(), 14u);
  ASSERT_EQ(i.propagation.size(), 2u);
  EXPECT_EQ(i.propagation[0].role, "cause");
  EXPECT_EQ(i.propagation[0].fault_class, "network_loss");
  EXPECT_EQ(i.propagation[1].role, "entry");
  EXPECT_EQ(i.propagation[1].propagated, "latency");
  // Key metrics: the phenomenon first, then the cause's evidence.
  ASSERT_GE(i.key_metrics.size(), 4u);
  EXPECT_EQ(i.key_metrics[0].entity.name, "gateway");
  EXPECT_EQ(i.key_metrics[2].metric, Metric::kRetransmits);
  EXPECT_EQ(i.labels.at("fault_class"), "network_loss");
  EXPECT_EQ(i.labels.at("severity"), "error");
  EXPECT_EQ(i.situation.source, "edge_loss.json");
  EXPECT_EQ(i.situation.end_s, 1180);
}

TEST(Diagnose, DrillDownNamesTheEndpointOrInstance) {
  const Incident slow = Incident_("slow_leaf.json");
  ASSERT_EQ(slow.drilldown.size(), 1u);  // db (the cause); gateway has no breakdown recorded
  EXPECT_EQ(slow.drilldown[0].service, "db");
  EXPECT_EQ(slow.drilldown[0].kpi, Metric::kLatencyMeanMs);
  EXPECT_EQ(slow.drilldown[0].elements, std::vector<std::string>{"endpoint=GET /query"});
  EXPECT_EQ(slow.drilldown[0].leaves, 4u);
  EXPECT_EQ(slow.drilldown[0].abnormal_leaves, 2u);
  EXPECT_NEAR(slow.drilldown[0].share, 0.6, 0.02);
  // The container's OOM kills: db's failures come from the instance in it.
  const Incident oom = Incident_("oom_kill.json");
  ASSERT_EQ(oom.drilldown.size(), 1u);
  EXPECT_EQ(oom.drilldown[0].service, "db");  // the service the container slows down
  EXPECT_EQ(oom.drilldown[0].kpi, Metric::kErrorRate);
  EXPECT_EQ(oom.drilldown[0].elements, std::vector<std::string>{"instance=db-2"});
  EXPECT_EQ(oom.severity, Severity::kCritical);  // error rate 0.16
  EXPECT_EQ(oom.phenomenon.impact.basis, "error_rate");
  EXPECT_NEAR(oom.phenomenon.impact.share, 0.15, 0.01);
}

// gateway's breakdown over endpoint x instance: GET /browse (40% of the requests) twice as slow
// from window 24 on, GET /cart, /home and /search (20% each) as fast as before.
topology::Situation WithGatewayBreakdown(const std::vector<std::string>& instances) {
  topology::Situation s = Load("slow_leaf.json");
  topology::Breakdown b;
  b.service = "gateway";
  b.dims = {"endpoint", "instance", "machine"};
  const std::vector<std::pair<std::string, double>> endpoints = {
      {"GET /browse", 0.4}, {"GET /cart", 0.2}, {"GET /home", 0.2}, {"GET /search", 0.2}};
  const size_t n = s.series.front().values.size();
  for (const auto& [endpoint, share] : endpoints) {
    for (const std::string& inst : instances) {
      topology::BreakdownLeaf leaf;
      leaf.values = {endpoint, inst, "m1"};
      for (size_t i = 0; i < n; ++i) {
        const double requests = 250 * share * (1 + 0.02 * std::sin(static_cast<double>(i)));
        const double mean_ms = endpoint == "GET /browse" && i >= 24 ? 120 : 60;
        leaf.requests.push_back(requests);
        leaf.errors.push_back(0);
        leaf.latency_sum_ms.push_back(requests * mean_ms * (1 + 0.01 * std::cos(1.7 * static_cast<double>(i))));
      }
      b.leaves.push_back(std::move(leaf));
    }
  }
  s.breakdowns.push_back(std::move(b));
  return s;
}

// Impact is what the fault touched: db slow behind gateway's GET /browse (40% of its requests, on
// both of its instances) while GET /cart, /home and /search answer as fast as before is 40% of
// gateway's requests and 1 of its 4 endpoints, not all of them.
TEST(Diagnose, ImpactIsTheShareOfRequestsAndEndpointsTheFaultTouched) {
  Diagnosis d = Diagnose(WithGatewayBreakdown({"gw-1", "gw-2"}), fta::DefaultFaultTrees());
  ASSERT_TRUE(d.incident) << d.reason;
  const Impact& impact = d.incident->phenomenon.impact;
  EXPECT_EQ(impact.basis, "drilldown");
  EXPECT_NEAR(impact.share, 0.4, 0.01);
  EXPECT_EQ(impact.endpoints, 4u);
  EXPECT_EQ(impact.endpoints_affected, 1u);
  const std::string text = IncidentToText(*d.incident);
  EXPECT_NE(text.find("Impact:  40% of gateway's requests (drilldown; 1 of 4 endpoints)"),
            std::string::npos)
      << text;
  // The JSON carries the endpoints and reads back.
  auto back = IncidentFromJson(IncidentToJson(*d.incident));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->phenomenon.impact.endpoints, 4u);
  EXPECT_EQ(back->phenomenon.impact.endpoints_affected, 1u);
}

// With one instance, GET /browse is one abnormal leaf of four: too few to make a drill-down
// element (gateway gets no drill-down finding), but still the share the impact reports, not
// the path's first call (which carries all of gateway's requests).
TEST(Diagnose, OneAbnormalLeafStillMeasuresTheImpact) {
  Diagnosis d = Diagnose(WithGatewayBreakdown({"gw-1"}), fta::DefaultFaultTrees());
  ASSERT_TRUE(d.incident) << d.reason;
  for (const DrillDownFinding& f : d.incident->drilldown) EXPECT_NE(f.service, "gateway");
  const Impact& impact = d.incident->phenomenon.impact;
  EXPECT_EQ(impact.basis, "drilldown");
  EXPECT_NEAR(impact.share, 0.4, 0.01);
  EXPECT_EQ(impact.endpoints, 4u);
  EXPECT_EQ(impact.endpoints_affected, 1u);
}

// What attribution set aside reaches the reader: search, faster while gateway slowed, with why.
TEST(Diagnose, TheIncidentListsWhatAttributionSetAsideAndWhy) {
  const Incident i = Incident_("negative_sibling.json");
  ASSERT_EQ(i.set_aside.size(), 1u);
  EXPECT_EQ(i.set_aside[0].entity, "search");
  EXPECT_EQ(i.set_aside[0].reason.substr(0, i.set_aside[0].reason.find(" (")), "latency_p99_ms fell");
  const std::string text = IncidentToText(i);
  EXPECT_NE(text.find("\nSet aside\n  search: latency_p99_ms fell (z "), std::string::npos) << text;
  auto back = IncidentFromJson(IncidentToJson(i));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->set_aside.size(), 1u);
  EXPECT_EQ(back->set_aside[0].reason, i.set_aside[0].reason);
  // An incident stored before the field existed reads back with none.
  auto j = nlohmann::json::parse(IncidentToJson(i));
  j.erase("set_aside");
  auto old = IncidentFromJson(j.dump());
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_TRUE(old->set_aside.empty());
  // Nothing set aside: an empty list.
  EXPECT_TRUE(Incident_("slow_leaf.json").set_aside.empty());
}

TEST(Diagnose, DrillDownServiceComparesTheTestPeriodWithTheBaseline) {
  const topology::Situation s = Load("error_leaf.json");
  auto f = DrillDownService(s, "db", Metric::kErrorRate, 22, 24);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->elements, std::vector<std::string>{"instance=db-2"});
  EXPECT_EQ(f->unexplained, 0u);
  // Without a fault there is nothing to explain.
  auto calm = DrillDownService(Load("fault_free.json"), "db", Metric::kErrorRate, 22, 24);
  ASSERT_TRUE(calm);
  EXPECT_EQ(calm->leaves, 4u);
  EXPECT_EQ(calm->abnormal_leaves, 0u);
  EXPECT_TRUE(calm->elements.empty());
  EXPECT_FALSE(DrillDownService(s, "gateway", Metric::kErrorRate, 22, 24));  // no breakdown
}

TEST(Diagnose, NoIncidentWhenNothingIsWrongOrTooLittleIsKnown) {
  Diagnosis d = Diagnose(Load("fault_free.json"), fta::DefaultFaultTrees());
  EXPECT_FALSE(d.incident);
  EXPECT_EQ(d.reason.substr(0, d.reason.find(" (")),
            "no anomaly: gateway latency_p99_ms is within its baseline");
  topology::Situation s = Load("slow_leaf.json");
  s.alarm.at_s = 1000 + 7 * 5;
  d = Diagnose(s, fta::DefaultFaultTrees());
  EXPECT_FALSE(d.incident);
  EXPECT_EQ(d.reason,
            "cannot judge gateway latency_p99_ms: 5 windows of history before the alarm, 6 needed");
}

TEST(Diagnose, TheSameSituationGivesTheSameIncident) {
  EXPECT_EQ(IncidentToJson(Incident_("cpu_exhaustion.json")),
            IncidentToJson(Incident_("cpu_exhaustion.json")));
  // Another cause, another identity.
  EXPECT_NE(Incident_("cpu_exhaustion.json").dedup_key, Incident_("disk_io.json").dedup_key + "x");
  EXPECT_EQ(Incident_("cpu_exhaustion.json").dedup_key, "service:gateway|machine:m3");
}

TEST(Incident, JsonCarriesEveryFieldTheSchemaRequires) {
  const auto j = nlohmann::json::parse(IncidentToJson(Incident_("container_throttle.json")));
  for (const char* field :
       {"schema_version", "id", "dedup_key", "fingerprint", "status", "sequence", "opened_at",
        "updated_at", "resolved_at", "severity", "title", "summary", "phenomenon", "key_metrics",
        "root_causes", "fault_tree", "propagation", "drilldown", "situation", "labels",
        "annotations"})
    EXPECT_TRUE(j.contains(field)) << field;
  EXPECT_EQ(j["schema_version"], 1);
  EXPECT_EQ(j["opened_at"], "1970-01-01T00:18:40Z");
  EXPECT_TRUE(j["resolved_at"].is_null());
  EXPECT_EQ(j["root_causes"][0]["entity"]["kind"], "container");
  EXPECT_EQ(j["root_causes"][0]["fault_classes"][0]["name"], "container_cpu_throttling");
  EXPECT_EQ(j["fault_tree"]["tree"]["children"][1]["evidence"][0]["metric"], "cpu_throttled_ratio");
  EXPECT_EQ(j["propagation"].size(), 4u);
  EXPECT_EQ(j["propagation"][0]["entity"]["name"], "ctr-db-1");
  EXPECT_EQ(j["phenomenon"]["unit"], "ms");
}

TEST(Incident, ReportsForPeopleAndTheGraph) {
  const Incident i = Incident_("container_throttle.json");
  const std::string text = IncidentToText(i);
  EXPECT_EQ(text.rfind("INCIDENT " + i.id + "  [open #1]  severity error  opened 1970-01-01T00:18:40Z\n"
                       "Container CPU throttling (its CPU quota) at container ctr-db-1: gateway "
                       "latency_p99_ms rose\n",
                       0),
            0u)
      << text;
  EXPECT_NE(text.find("\nWhy container_cpu_throttling (fault tree)\n"), std::string::npos);
  EXPECT_NE(text.find("  -> service api  (hop, latency propagated)"), std::string::npos);
  const std::string md = IncidentToMarkdown(i);
  EXPECT_NE(md.find("| container ctr-db-1 | cpu_throttled_ratio | 1% | 79.2% |"), std::string::npos) << md;
  const std::string dot = PropagationToDot(i);
  EXPECT_NE(dot.find("\"container ctr-db-1\" -> \"service db\" [color=red, penwidth=2];"),
            std::string::npos)
      << dot;
  EXPECT_EQ(Rfc3339(1795551055), "2026-11-24T20:10:55Z");
}

}  // namespace
}  // namespace faultline::diagnosis
