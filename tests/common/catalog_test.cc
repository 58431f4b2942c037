#include "faultline/common/catalog.h"

#include <gtest/gtest.h>

#include <set>

namespace faultline {
namespace {

TEST(Catalog, EveryMetricRoundTripsByNameAndHasAUnitAFamilyAndKinds) {
  std::set<std::string_view> names;
  for (const MetricInfo& m : Metrics()) {
    EXPECT_TRUE(names.insert(m.name).second) << m.name << " twice";
    auto back = ParseMetric(m.name);
    ASSERT_TRUE(back.ok()) << m.name;
    EXPECT_EQ(*back, m.id);
    EXPECT_EQ(&Info(m.id), &m);
    EXPECT_FALSE(m.unit.empty()) << m.name;
    EXPECT_FALSE(m.computed.empty()) << m.name;
    EXPECT_FALSE(m.kinds.empty()) << m.name;
    // Units in the name where the unit is a time or a size, so nobody reads ms as s.
    if (m.unit == "ms") {
      EXPECT_TRUE(m.name.ends_with("_ms")) << m.name;
    }
    if (m.unit == "MiB") {
      EXPECT_TRUE(m.name.ends_with("_mb")) << m.name;
    }
    if (m.unit == "ratio") {
      EXPECT_TRUE(m.name.ends_with("_ratio") || m.name.ends_with("_rate")) << m.name;
    }
    // ... and the other way: a name that says a unit has it.
    if (m.name.ends_with("_ms")) {
      EXPECT_EQ(m.unit, "ms") << m.name;
    }
    if (m.name.ends_with("_mb")) {
      EXPECT_EQ(m.unit, "MiB") << m.name;
    }
    if (m.name.ends_with("_ratio") || m.name.ends_with("_rate")) {
      EXPECT_EQ(m.unit, "ratio") << m.name;
    }
    if (m.name.ends_with("_cores")) {
      EXPECT_EQ(m.unit, "cores") << m.name;
    }
    // Every metric has a noise floor (attribution judges changes against it).
    EXPECT_GT(m.min_delta, 0) << m.name;
    for (EntityKind k : {EntityKind::kService, EntityKind::kEdge, EntityKind::kInstance,
                         EntityKind::kContainer, EntityKind::kMachine}) {
      EXPECT_EQ(ParseMetricFor(m.name, k).ok(), m.kinds.Has(k)) << m.name;
    }
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kMetricCount));
  EXPECT_EQ(Info(Metric::kLatencyP99Ms).family, MetricFamily::kLatency);
  EXPECT_EQ(Info(Metric::kRetransmits).family, MetricFamily::kNetwork);
  EXPECT_EQ(Info(Metric::kMemoryAvailableMb).polarity, Polarity::kDownIsBad);
  EXPECT_FALSE(Info(Metric::kRetransmits).kinds.Has(EntityKind::kService));
}

TEST(Catalog, UnknownAndMisappliedNamesAreErrorsListingTheKnownOnes) {
  EXPECT_EQ(ParseMetric("latency_p99").status().message(),
            "unknown metric \"latency_p99\" (known: " + KnownMetricNames() + ")");
  EXPECT_EQ(KnownMetricNames().substr(0, 36), "requests, errors, error_rate, client");
  EXPECT_EQ(ParseMetricFor("cpu_busy_ratio", EntityKind::kService).status().message(),
            "metric \"cpu_busy_ratio\" does not apply to a service (it applies to machine; metrics "
            "of a service: requests, errors, error_rate, client_errors, incomplete, "
            "latency_mean_ms, latency_p50_ms, latency_p90_ms, latency_p99_ms, latency_max_ms)");
  EXPECT_EQ(ParseMetricFor("runq_p99_ms", EntityKind::kEdge).status().message().substr(0, 67),
            "metric \"runq_p99_ms\" does not apply to a edge (it applies to machin");
}

TEST(Catalog, KindsAndFamiliesParseByNameAndErrorsNameTheAllowedOnes) {
  for (int k = 1; k <= kMaxEntityKind; ++k) {
    const auto kind = static_cast<EntityKind>(k);
    auto back = ParseEntityKind(EntityKindName(kind));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, kind);
  }
  EXPECT_EQ(ParseEntityKind("pod").status().message(),
            "kind \"pod\": expected service, edge, listener, machine, instance, container or "
            "external");
  EXPECT_EQ(ParseEntityKind("edge", {EntityKind::kService, EntityKind::kMachine}).status().message(),
            "kind \"edge\": expected service or machine");
  EXPECT_EQ(KindSet{EntityKind::kMachine}.Describe(), "machine");
  EXPECT_TRUE(KindSet::All().Has(EntityKind::kExternal));
  EXPECT_FALSE(KindSet::All().Has(static_cast<EntityKind>(0)));
  EXPECT_EQ((KindSet{EntityKind::kEdge, EntityKind::kService} & KindSet{EntityKind::kEdge}),
            KindSet{EntityKind::kEdge});
  for (int f = 0; f < kMetricFamilies; ++f) {
    const auto family = static_cast<MetricFamily>(f);
    EXPECT_EQ(ParseMetricFamily(MetricFamilyName(family)).value(), family);
  }
  EXPECT_EQ(ParseMetricFamily("disk").status().message(),
            "unknown metric family \"disk\" (known: traffic, errors, latency, network, cpu, "
            "memory, io, agent)");
}

}  // namespace
}  // namespace faultline
