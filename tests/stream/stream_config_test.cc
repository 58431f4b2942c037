#include <gtest/gtest.h>

#include "faultline/stream/stream_processor.h"

namespace faultline::stream {
namespace {

TEST(StreamConfig, ReadsEverySetting) {
  StreamOptions o;
  ASSERT_TRUE(ParseStreamConfig(R"(
window_seconds: 10
allowed_lateness_seconds: 3
retention_seconds: 7200
max_future_seconds: 60
max_endpoints_per_service: 8
max_peers: 1000
commit_interval_ms: 250
session_timeout_ms: 10000
changelog_topic: fl.changelog
changelog_snapshot_commits: 50
changelog_snapshot_bytes: 65536
sync_commits: true
naming:
  service: ["{container}", "{comm}"]
  instance: "{pod}/{pid}"
)",
                                "s.yaml", &o)
                  .ok());
  EXPECT_EQ(o.windows.window_s, 10);
  EXPECT_EQ(o.windows.allowed_lateness_s, 3);
  EXPECT_EQ(o.windows.retention_s, 7200);
  EXPECT_EQ(o.windows.max_future_s, 60);
  EXPECT_EQ(o.windows.max_endpoints_per_service, 8u);
  EXPECT_EQ(o.windows.max_peers, 1000u);
  EXPECT_EQ(o.commit_interval_ms, 250);
  EXPECT_EQ(o.session_timeout_ms, 10000);
  EXPECT_EQ(o.changelog_topic, "fl.changelog");
  EXPECT_EQ(o.changelog_snapshot_commits, 50u);
  EXPECT_EQ(o.changelog_snapshot_bytes, 65536u);
  EXPECT_TRUE(o.windows.sync_commits);
  EXPECT_EQ(o.naming.service_templates, (std::vector<std::string>{"{container}", "{comm}"}));
  EXPECT_EQ(o.naming.instance_template, "{pod}/{pid}");
  StreamOptions empty;
  EXPECT_TRUE(ParseStreamConfig("", "e.yaml", &empty).ok());
  EXPECT_EQ(empty.windows.window_s, 5);
}

TEST(StreamConfig, ErrorsNameTheFileLineAndField) {
  StreamOptions o;
  auto err = [&](const std::string& yaml) {
    return ParseStreamConfig(yaml, "s.yaml", &o).message();
  };
  EXPECT_EQ(
      err("window_seconds: 5\nwindow_secs: 5\n"),
      "s.yaml:2: unknown setting 'window_secs' (known: window_seconds, allowed_lateness_seconds, "
      "retention_seconds, max_future_seconds, max_endpoints_per_service, max_peers, "
      "commit_interval_ms, session_timeout_ms, changelog_topic, changelog_snapshot_commits, "
      "changelog_snapshot_bytes, sync_commits, naming)");
  EXPECT_EQ(err("changelog_snapshot_bytes: 100\n"),
            "s.yaml:1: changelog_snapshot_bytes: expected an integer in 4096..1099511627776, got "
            "'100'");
  EXPECT_EQ(err("window_seconds: five\n"),
            "s.yaml:1: window_seconds: expected an integer in 1..86400, got 'five'");
  EXPECT_EQ(err("\nwindow_seconds: 0\n"),
            "s.yaml:2: window_seconds: expected an integer in 1..86400, got '0'");
  EXPECT_EQ(err("sync_commits: yes\n"),
            "s.yaml:1: sync_commits: expected true or false, got 'yes'");
  EXPECT_EQ(err("naming:\n  service: ['{img}']\n"),
            "s.yaml:2: naming template '{img}': unknown field {img} (known: comm, container, pod, "
            "cgroup, machine, pid, namespace, workload, pod_name, container_name, image)");
  EXPECT_EQ(err("naming:\n  services: []\n"),
            "s.yaml:2: naming: unknown field 'services' (known: service, instance)");
  EXPECT_EQ(err("- a\n- b\n"), "s.yaml:1: expected a mapping of settings");
  EXPECT_EQ(err("window_seconds: [1\n"), "s.yaml:2: not valid YAML: end of sequence flow not found");
  // Nesting that would exhaust yaml-cpp's stack is refused before parsing.
  EXPECT_EQ(err("naming: " + std::string(5000, '[')), "s.yaml:1: nested deeper than 200 levels");
}

}  // namespace
}  // namespace faultline::stream
