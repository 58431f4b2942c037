#include "faultline/agent/identity.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace faultline::agent {
namespace {

const std::string kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kPod = "8f9c1b2a-3d4e-4f50-8a6b-7c8d9e0f1a2b";

TEST(ParseCgroupPath, DockerCgroupfsAndSystemd) {
  auto a = ParseCgroupPath("/docker/" + kId);
  EXPECT_EQ(a.container_id, kId);
  EXPECT_EQ(a.runtime, "docker");
  auto b = ParseCgroupPath("/system.slice/docker-" + kId + ".scope");
  EXPECT_EQ(b.container_id, kId);
  EXPECT_EQ(b.runtime, "docker");
  EXPECT_EQ(b.pod_uid, "");
}

TEST(ParseCgroupPath, ContainerdUnderKubernetesSystemdDriver) {
  std::string pod = kPod;
  std::replace(pod.begin(), pod.end(), '-', '_');
  auto r = ParseCgroupPath("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + pod +
                           ".slice/cri-containerd-" + kId + ".scope");
  EXPECT_EQ(r.container_id, kId);
  EXPECT_EQ(r.runtime, "containerd");
  EXPECT_EQ(r.pod_uid, kPod);
}

TEST(ParseCgroupPath, CrioAndCgroupfsDriver) {
  auto c = ParseCgroupPath("/kubepods.slice/kubepods-pod" + std::string(kPod).replace(8, 1, "_").replace(13, 1, "_").replace(18, 1, "_").replace(23, 1, "_") +
                           ".slice/crio-" + kId + ".scope");
  EXPECT_EQ(c.runtime, "crio");
  EXPECT_EQ(c.container_id, kId);
  EXPECT_EQ(c.pod_uid, kPod);
  auto d = ParseCgroupPath("/kubepods/besteffort/pod" + kPod + "/" + kId);
  EXPECT_EQ(d.container_id, kId);
  EXPECT_EQ(d.runtime, "");  // the cgroupfs driver's path does not name the runtime
  EXPECT_EQ(d.pod_uid, kPod);
}

TEST(ParseCgroupPath, HostProcessesAndLookalikesHaveNoContainer) {
  EXPECT_EQ(ParseCgroupPath("/user.slice/user-0.slice/session-1.scope").container_id, "");
  EXPECT_EQ(ParseCgroupPath("/docker/" + kId.substr(1)).container_id, "");           // 63 chars
  EXPECT_EQ(ParseCgroupPath("/docker/" + kId.substr(1) + "G").container_id, "");     // not hex
  EXPECT_EQ(ParseCgroupPath("/kubepods/podnot-a-uid/x").pod_uid, "");
  EXPECT_EQ(ParseCgroupPath("").container_id, "");
}

TEST(CgroupPathFromProcFile, PrefersTheUnifiedPathThenTheDeepestV1) {
  EXPECT_EQ(CgroupPathFromProcFile("12:pids:/a\n0::/kubepods/x\n"), "/kubepods/x");
  EXPECT_EQ(CgroupPathFromProcFile("4:memory:/docker/abc\n3:cpu:/\n0::/\n"), "/docker/abc");
  EXPECT_EQ(CgroupPathFromProcFile("garbage\n"), "");
}

TEST(ProcessResolver, ReadsProcAndFallsBackToTheKernelCommWhenGone) {
  const auto root = std::filesystem::temp_directory_path() / ("fl_proc_" + std::to_string(getpid()));
  std::filesystem::create_directories(root / "42");
  std::ofstream(root / "42" / "cgroup") << "0::/system.slice/docker-" << kId << ".scope\n";
  ProcessResolver r(root.string(), 2);
  const ProcessInfo& a = r.Resolve(42, std::string_view("nginx\0\0\0", 8), 7, 1);
  EXPECT_EQ(a.comm, "nginx");
  EXPECT_EQ(a.cgroup_id, 7u);
  EXPECT_EQ(a.container.container_id, kId);
  const ProcessInfo& gone = r.Resolve(43, "curl", 0, 2);
  EXPECT_EQ(gone.cgroup_path, "");
  EXPECT_EQ(gone.comm, "curl");
  r.Resolve(44, "x", 0, 3);  // over capacity 2: the oldest goes
  EXPECT_EQ(r.evictions(), 1u);
  EXPECT_EQ(r.size(), 2u);
  // The one that went is 42, the oldest: 43 is still cached (its comm from the first event, not
  // this one's), and 42 is read from /proc again (its new cgroup file).
  EXPECT_EQ(r.Resolve(43, "other", 0, 4).comm, "curl");
  EXPECT_EQ(r.evictions(), 1u);
  std::ofstream(root / "42" / "cgroup") << "0::/user.slice\n";
  const ProcessInfo& again = r.Resolve(42, "nginx", 7, 5);
  EXPECT_EQ(again.cgroup_path, "/user.slice");
  EXPECT_EQ(again.container.container_id, "");
  // Room for 42 came from 43, loaded before 44 (a cache hit does not refresh an entry): 43 is
  // read again, from the kernel's comm since its /proc entry is gone; 44 is still cached.
  EXPECT_EQ(r.evictions(), 2u);
  EXPECT_EQ(r.Resolve(44, "y", 0, 6).comm, "x");
  EXPECT_EQ(r.evictions(), 2u);
  EXPECT_EQ(r.Resolve(43, "fresh", 0, 7).comm, "fresh");
  EXPECT_EQ(r.evictions(), 3u);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace faultline::agent
