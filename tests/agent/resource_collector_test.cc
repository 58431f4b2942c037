// ResourceCollector on a cgroup v2 tree and a /proc laid out in a temporary directory: the
// kernel's cumulative maps and the cgroup files become per-interval deltas, cgroups are named by
// their directories' kernfs ids, the busiest are kept under the bound, and quiet entries are
// forgotten.
#include "resource_collector.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace faultline::agent {
namespace {

namespace fs = std::filesystem;

class ResourceCollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("fl_res_" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "cg" / "app");
    fs::create_directories(root_ / "cg" / "batch");
    fs::create_directories(root_ / "proc");
    Cgroup("app", 1000, 0, 0, 0, 64 << 20, 0);
    Cgroup("batch", 0, 0, 0, 0, 1 << 20, 0);
    Proc(100, 400, 5, 2000000);
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }
  void Cgroup(const std::string& name, uint64_t usage_usec, uint64_t periods, uint64_t throttled,
              uint64_t throttled_usec, uint64_t memory, uint64_t oom_kills) {
    const fs::path d = root_ / "cg" / name;
    Write(d / "cpu.stat", "usage_usec " + std::to_string(usage_usec) + "\nnr_periods " +
                              std::to_string(periods) + "\nnr_throttled " +
                              std::to_string(throttled) + "\nthrottled_usec " +
                              std::to_string(throttled_usec) + "\n");
    Write(d / "memory.current", std::to_string(memory) + "\n");
    Write(d / "memory.max", "134217728\n");
    Write(d / "memory.stat", "inactive_file 1048576\npgmajfault 3\n");
    Write(d / "memory.events", "oom 0\noom_kill " + std::to_string(oom_kills) + "\n");
  }
  // /proc/stat's cpu line: user, nice, system, idle, iowait (busy = user + system).
  void Proc(uint64_t busy_ticks, uint64_t idle_ticks, uint64_t majfault, uint64_t available_kb) {
    Write(root_ / "proc" / "stat", "cpu  " + std::to_string(busy_ticks) + " 0 0 " +
                                       std::to_string(idle_ticks) + " 0 0 0 0 0 0\ncpu0 1 0 0 1\n");
    Write(root_ / "proc" / "vmstat", "pgfault 1\npgmajfault " + std::to_string(majfault) + "\n");
    Write(root_ / "proc" / "meminfo", "MemTotal: 4000000 kB\nMemAvailable: " +
                                          std::to_string(available_kb) + " kB\n");
  }
  uint64_t Id(const std::string& name) {
    struct stat st {};
    EXPECT_EQ(stat((root_ / "cg" / name).c_str(), &st), 0);
    return st.st_ino;
  }
  static fl_hist Hist(uint64_t count, uint64_t sum_ns, int bucket) {
    fl_hist h{};
    h.count = count, h.sum_ns = sum_ns, h.buckets[bucket] = count;
    return h;
  }
  ResourceCollector Make(size_t max_cgroups = 512) {
    CgroupLayout layout;
    layout.unified = (root_ / "cg").string();
    layout.SetUnifiedControllers("cpuset cpu io memory pids\n");
    return ResourceCollector(CgroupReader(layout), (root_ / "proc").string(), max_cgroups);
  }

  fs::path root_;
  ResourceCollector::Output out_;
  std::vector<uint64_t> forget_runq_;
  std::vector<fl_io_key> forget_io_;
};

TEST_F(ResourceCollectorTest, DeltasPerIntervalFromCumulativeMapsAndFiles) {
  ResourceCollector c = Make();
  const uint64_t s = 1'000'000'000;
  c.Collect({{Id("app"), Hist(10, 10'000'000, 20)}, {999999999, Hist(4, 4000, 3)}}, {}, 1 * s, s,
            &out_, &forget_runq_, &forget_io_);
  // The first interval primes: the cgroup's run queue is there, its CPU and faults are not yet.
  ASSERT_EQ(out_.cgroups.size(), 1u);
  EXPECT_EQ(out_.cgroups[0].cgroup_path(), "/app");
  EXPECT_EQ(out_.cgroups[0].cgroup_version(), 2u);
  EXPECT_EQ(out_.cgroups[0].runq_latency().count(), 10u);
  EXPECT_EQ(out_.cgroups[0].cpu_usage_ns(), 0u);
  EXPECT_EQ(out_.cgroups[0].memory_usage_bytes(), 64u << 20);
  EXPECT_EQ(out_.cgroups[0].memory_limit_bytes(), 134217728u);
  EXPECT_EQ(out_.cgroups[0].memory_working_set_bytes(), (64u << 20) - 1048576u);
  EXPECT_EQ(out_.unknown_cgroups, 1u);  // an id no directory has
  EXPECT_EQ(out_.machine.runq_latency().count(), 14u);  // the machine counts every task
  EXPECT_EQ(out_.machine.cpu_total_ns(), 0u);
  EXPECT_EQ(out_.machine.memory_available_bytes(), 2000000u * 1024);

  Cgroup("app", 1000 + 500000, 10, 4, 200000, 70 << 20, 1);
  Proc(100 + 150, 400 + 50, 5 + 7, 1500000);
  c.Collect({{Id("app"), Hist(25, 40'000'000, 20)}}, {}, 2 * s, s, &out_, &forget_runq_,
            &forget_io_);
  ASSERT_EQ(out_.cgroups.size(), 1u);
  const v1::CgroupResources& app = out_.cgroups[0];
  EXPECT_EQ(app.runq_latency().count(), 15u);
  EXPECT_EQ(app.runq_latency().sum_ns(), 30'000'000u);
  EXPECT_EQ(app.cpu_usage_ns(), 500'000'000u);
  EXPECT_EQ(app.cpu_periods(), 10u);
  EXPECT_EQ(app.cpu_throttled_periods(), 4u);
  EXPECT_EQ(app.cpu_throttled_ns(), 200'000'000u);
  EXPECT_EQ(app.oom_kills(), 1u);
  EXPECT_EQ(app.major_page_faults(), 0u);  // pgmajfault stayed at 3
  const uint64_t tick = 1'000'000'000ULL / static_cast<uint64_t>(sysconf(_SC_CLK_TCK));
  EXPECT_EQ(out_.machine.cpu_busy_ns(), 150 * tick);
  EXPECT_EQ(out_.machine.cpu_total_ns(), 200 * tick);
  EXPECT_EQ(out_.machine.major_page_faults(), 7u);
  EXPECT_EQ(out_.machine.memory_available_bytes(), 1500000u * 1024);
  EXPECT_EQ(out_.unknown_cgroups, 0u);

  // A third interval: the deltas since the second, not the totals.
  Cgroup("app", 1000 + 500000 + 250000, 25, 6, 260000, 70 << 20, 1);
  Proc(250 + 40, 450 + 60, 12, 1500000);
  c.Collect({{Id("app"), Hist(27, 42'000'000, 20)}}, {}, 3 * s, s, &out_, &forget_runq_,
            &forget_io_);
  ASSERT_EQ(out_.cgroups.size(), 1u);
  EXPECT_EQ(out_.cgroups[0].runq_latency().count(), 2u);
  EXPECT_EQ(out_.cgroups[0].cpu_usage_ns(), 250'000'000u);
  EXPECT_EQ(out_.cgroups[0].cpu_periods(), 15u);
  EXPECT_EQ(out_.cgroups[0].cpu_throttled_periods(), 2u);
  EXPECT_EQ(out_.cgroups[0].cpu_throttled_ns(), 60'000'000u);
  EXPECT_EQ(out_.cgroups[0].oom_kills(), 0u);
  EXPECT_EQ(out_.machine.cpu_busy_ns(), 40 * tick);
  EXPECT_EQ(out_.machine.cpu_total_ns(), 100 * tick);
  EXPECT_EQ(out_.machine.major_page_faults(), 0u);
}

TEST_F(ResourceCollectorTest, TheBusiestCgroupsAreKeptUnderTheBoundAndQuietOnesForgotten) {
  ResourceCollector c = Make(1);
  const uint64_t s = 1'000'000'000;
  c.Collect({{Id("app"), Hist(3, 3000, 2)}, {Id("batch"), Hist(9, 9000, 2)}}, {}, s, s, &out_,
            &forget_runq_, &forget_io_);
  ASSERT_EQ(out_.cgroups.size(), 1u);
  EXPECT_EQ(out_.cgroups[0].cgroup_path(), "/batch");
  EXPECT_EQ(out_.cgroups_over_limit, 1u);
  EXPECT_EQ(out_.machine.runq_latency().count(), 12u);  // left out of cgroups, not of the machine
  // Nothing new for app and batch for more than a minute: their map entries are to be deleted.
  c.Collect({{Id("app"), Hist(3, 3000, 2)}, {Id("batch"), Hist(9, 9000, 2)}}, {}, 62 * s, s,
            &out_, &forget_runq_, &forget_io_);
  EXPECT_TRUE(out_.cgroups.empty());
  std::sort(forget_runq_.begin(), forget_runq_.end());
  std::vector<uint64_t> both = {Id("app"), Id("batch")};
  std::sort(both.begin(), both.end());
  EXPECT_EQ(forget_runq_, both);
  // A map entry recreated (its count went back) counts whole, not as a negative delta.
  c.Collect({{Id("app"), Hist(2, 2000, 2)}}, {}, 63 * s, s, &out_, &forget_runq_, &forget_io_);
  ASSERT_EQ(out_.cgroups.size(), 1u);
  EXPECT_EQ(out_.cgroups[0].runq_latency().count(), 2u);
}

TEST_F(ResourceCollectorTest, BlockIoPerDeviceAndOpForTheCgroupAndTheMachine) {
  ResourceCollector c = Make();
  const uint64_t s = 1'000'000'000;
  const uint32_t dev = (7u << 20) | 0;  // loop0
  fl_io_stats write{};
  write.bytes = 1 << 20;
  write.latency = Hist(8, 8'000'000, 20);
  fl_io_key key{};
  key.cgroup_id = Id("app"), key.dev = dev, key.op = FL_IO_WRITE;
  c.Collect({}, {{key, write}}, s, s, &out_, &forget_runq_, &forget_io_);
  write.bytes = 3 << 20;
  write.latency = Hist(24, 24'000'000, 20);
  c.Collect({}, {{key, write}}, 2 * s, s, &out_, &forget_runq_, &forget_io_);
  ASSERT_EQ(out_.cgroups.size(), 1u);
  ASSERT_EQ(out_.cgroups[0].block_io_size(), 1);
  const v1::BlockIo& b = out_.cgroups[0].block_io(0);
  EXPECT_EQ(b.major(), 7u);
  EXPECT_EQ(b.minor(), 0u);
  EXPECT_EQ(b.write_bytes(), 2u << 20);
  EXPECT_EQ(b.write_ops(), 16u);
  EXPECT_EQ(b.read_bytes(), 0u);
  EXPECT_EQ(b.latency().count(), 16u);
  ASSERT_EQ(out_.machine.block_io_size(), 1);
  EXPECT_EQ(out_.machine.block_io(0).write_bytes(), 2u << 20);
}

}  // namespace
}  // namespace faultline::agent
