#include "faultline/agent/cgroups.h"

#include <gtest/gtest.h>

namespace faultline::agent {
namespace {

// This machine's layout: v1 controllers next to a v2 hierarchy that has none of them.
constexpr std::string_view kHybridMounts =
    "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n"
    "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n"
    "cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0\n"
    "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n"
    "cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0\n"
    "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";

TEST(CgroupLayout, HybridUsesTheV1Controllers) {
  const CgroupLayout l = ParseCgroupMounts(kHybridMounts, "\n");
  EXPECT_EQ(l.unified, "/sys/fs/cgroup/unified");
  int version = 0;
  EXPECT_EQ(l.MountFor("cpu", &version), "/sys/fs/cgroup/cpu");
  EXPECT_EQ(version, 1);
  EXPECT_EQ(l.MountFor("cpuacct"), "/sys/fs/cgroup/cpuacct");
  EXPECT_EQ(l.MountFor("memory", &version), "/sys/fs/cgroup/memory");
  EXPECT_EQ(l.MountFor("io", &version), "/sys/fs/cgroup/blkio");
  EXPECT_EQ(version, 1);
}

TEST(CgroupLayout, PureV2AndCombinedV1Mounts) {
  const CgroupLayout v2 = ParseCgroupMounts("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n",
                                            "cpuset cpu io memory pids\n");
  int version = 0;
  EXPECT_EQ(v2.MountFor("memory", &version), "/sys/fs/cgroup");
  EXPECT_EQ(version, 2);
  EXPECT_EQ(v2.MountFor("blkio"), "/sys/fs/cgroup");
  EXPECT_EQ(v2.MountFor("cpuacct"), "/sys/fs/cgroup");
  // Without the memory controller enabled at the root, v2 has no memory figures; CPU usage
  // (cpu.stat) is in every v2 cgroup regardless.
  const CgroupLayout bare = ParseCgroupMounts("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", "");
  EXPECT_EQ(bare.MountFor("memory", &version), "");
  EXPECT_EQ(version, 0);
  EXPECT_EQ(bare.MountFor("cpu"), "/sys/fs/cgroup");
  const CgroupLayout combined =
      ParseCgroupMounts("cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,cpu,cpuacct 0 0\n", "");
  EXPECT_EQ(combined.MountFor("cpu"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(combined.MountFor("cpuacct"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(combined.MountFor("memory"), "");
}

TEST(CgroupFiles, CpuStatV1AndV2) {
  const CpuFigures v2 = ParseCpuStatV2(
      "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 40\nnr_throttled 31\n"
      "throttled_usec 2480000\nnr_bursts 0\nburst_usec 0\n");
  EXPECT_TRUE(v2.valid);
  EXPECT_EQ(v2.usage_ns, 5'000'000u);
  EXPECT_EQ(v2.periods, 40u);
  EXPECT_EQ(v2.throttled_periods, 31u);
  EXPECT_EQ(v2.throttled_ns, 2'480'000'000u);
  EXPECT_FALSE(ParseCpuStatV2("nr_periods 1\n").valid);  // no usage: not a v2 cpu.stat

  const CpuFigures v1 =
      ParseCpuStatV1("nr_periods 12\nnr_throttled 9\nthrottled_time 712345678\n", "987654321\n");
  EXPECT_TRUE(v1.valid);
  EXPECT_EQ(v1.usage_ns, 987654321u);
  EXPECT_EQ(v1.throttled_periods, 9u);
  EXPECT_EQ(v1.throttled_ns, 712345678u);
  EXPECT_FALSE(ParseCpuStatV1("", "").valid);
}

TEST(CgroupFiles, CpuLimitInCores) {
  EXPECT_DOUBLE_EQ(ParseCpuMaxV2("50000 100000\n"), 0.5);
  EXPECT_DOUBLE_EQ(ParseCpuMaxV2("200000 100000"), 2.0);
  EXPECT_DOUBLE_EQ(ParseCpuMaxV2("max 100000\n"), 0);
  EXPECT_DOUBLE_EQ(ParseCpuMaxV2("50000 0"), 0);
  EXPECT_DOUBLE_EQ(ParseCpuMaxV2(""), 0);
  EXPECT_DOUBLE_EQ(ParseCfsQuotaV1("100000\n", "100000\n"), 1.0);
  EXPECT_DOUBLE_EQ(ParseCfsQuotaV1("25000", "100000"), 0.25);
  EXPECT_DOUBLE_EQ(ParseCfsQuotaV1("-1\n", "100000\n"), 0);
  EXPECT_DOUBLE_EQ(ParseCfsQuotaV1("100000", ""), 0);
}

TEST(CgroupFiles, MemoryV1AndV2) {
  const MemoryFigures v2 = ParseMemoryV2("67108864\n", "max\n",
                                         "anon 60000000\nfile 7000000\ninactive_file 1048576\n"
                                         "pgmajfault 17\n",
                                         "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n");
  EXPECT_TRUE(v2.valid);
  EXPECT_EQ(v2.usage, 67108864u);
  EXPECT_EQ(v2.limit, 0u);  // "max": none
  EXPECT_EQ(v2.working_set, 67108864u - 1048576u);
  EXPECT_EQ(v2.major_faults, 17u);
  EXPECT_EQ(v2.oom_kills, 1u);
  EXPECT_EQ(ParseMemoryV2("1\n", "4096\n", "", "").limit, 4096u);

  const MemoryFigures v1 = ParseMemoryV1(
      "5000000\n", "9223372036854771712\n",
      "cache 100\ninactive_file 10\ntotal_inactive_file 1000000\ntotal_pgmajfault 3\n",
      "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  EXPECT_TRUE(v1.valid);
  EXPECT_EQ(v1.limit, 0u);  // the kernel's "unlimited"
  EXPECT_EQ(v1.working_set, 4000000u);
  EXPECT_EQ(v1.major_faults, 3u);
  EXPECT_EQ(v1.oom_kills, 2u);
  EXPECT_EQ(ParseMemoryV1("1\n", "67108864\n", "", "").limit, 67108864u);
  EXPECT_FALSE(ParseMemoryV1("", "", "", "").valid);
}

TEST(CgroupFiles, KeyValuesSkipWhatDoesNotParse) {
  const auto kv =
      ParseKeyValues("a 1\nb x\n\nc  3 extra\nd\n18446744073709551615 7\ne 99999999999999999999\n");
  EXPECT_EQ(kv.size(), 3u);
  EXPECT_EQ(kv.at("a"), 1u);
  EXPECT_EQ(kv.at("c"), 3u);
  EXPECT_EQ(kv.at("18446744073709551615"), 7u);
}

TEST(ProcStat, BusyLeavesOutIdleAndIowait) {
  uint64_t busy = 0, total = 0;
  ASSERT_TRUE(ParseProcStatCpu("cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 1 2 3 4\n", &busy, &total));
  EXPECT_EQ(total, 1180u);
  EXPECT_EQ(busy, 160u);
  EXPECT_FALSE(ParseProcStatCpu("intr 1 2 3\n", &busy, &total));
  EXPECT_FALSE(ParseProcStatCpu("cpu  1 2\n", &busy, &total));
}

}  // namespace
}  // namespace faultline::agent
