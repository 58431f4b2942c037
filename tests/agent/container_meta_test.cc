#include "faultline/agent/container_meta.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../common/replay_server.h"

namespace faultline::agent {
namespace {

using testing::ReplayServer;
using Clock = std::chrono::steady_clock;

std::string Data(const std::string& name) {
  std::ifstream f(std::string(FAULTLINE_SOURCE_DIR) + "/tests/data/runtime/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const std::string kPodmanId = "0910c5beb77c935f4d0916db271d5f245c925fa49fda8c33bcf8cf31ba78908f";
const std::string kCrioId = std::string(64, 'c');

TEST(ContainerMeta, PodmansRecordedAnswerGivesTheNameImageAndKubeletLabels) {
  // Recorded from `podman system service` (Podman 4.3.1) for a container run with the labels the
  // kubelet sets.
  auto m = ParseDockerInspect(Data("podman_inspect.json"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->name(), "k8s_api_api-7d9c5b6f4-x2x9q_shop_0");
  EXPECT_EQ(m->image(), "localhost/fl-busybox:test");
  EXPECT_EQ(m->pod_namespace(), "shop");
  EXPECT_EQ(m->pod_name(), "api-7d9c5b6f4-x2x9q");
  EXPECT_EQ(m->container_name(), "api");
  EXPECT_EQ(m->pod_uid(), "5c3e2f0e-9a4b-4c1d-8e2f-0a1b2c3d4e5f");
  EXPECT_EQ(m->workload(), "api");
}

TEST(ContainerMeta, CrioAnswerGivesTheSame) {
  auto m = ParseCrioInspect(Data("crio_inspect.json"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->image(), "registry.example/shop/checkout:1.4.2");
  EXPECT_EQ(m->pod_namespace(), "shop");
  EXPECT_EQ(m->pod_name(), "checkout-5f7b8c9d6-q2w4z");
  EXPECT_EQ(m->container_name(), "checkout");
  EXPECT_EQ(m->workload(), "checkout");
}

TEST(ContainerMeta, ContainerdsBundleAnnotationsGiveTheSame) {
  // An OCI config.json as containerd's CRI plugin writes it for a pod's container.
  auto m = ParseOciConfig(Data("containerd_config.json"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->image(), "registry.example/shop/checkout:1.4.2");
  EXPECT_EQ(m->pod_namespace(), "shop");
  EXPECT_EQ(m->pod_name(), "checkout-5f7b8c9d6-q2w4z");
  EXPECT_EQ(m->container_name(), "checkout");
  EXPECT_EQ(m->pod_uid(), "0d9e8f7a-1b2c-4d3e-9f8a-7b6c5d4e3f2a");
  EXPECT_EQ(m->workload(), "checkout");
  EXPECT_EQ(ParseOciConfig("{\"annotations\":[]}").status().message(),
            "OCI config: annotations is not an object");
  EXPECT_EQ(ParseOciConfig("{\"annotations\":{\"io.kubernetes.cri.sandbox-name\":7}}").status().message(),
            "OCI config: annotations.io.kubernetes.cri.sandbox-name is not a string");
  auto bare = ParseOciConfig("{\"ociVersion\":\"1.0.2\"}");  // `ctr run`: no annotations
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->ByteSizeLong(), 0u);
}

TEST(ContainerMeta, MalformedAnswersNameWhatIsWrong) {
  EXPECT_EQ(ParseDockerInspect("{\"Name\":").status().message(), "docker inspect: not JSON");
  EXPECT_EQ(ParseDockerInspect("[1]").status().message(), "docker inspect: not a JSON object");
  EXPECT_EQ(ParseDockerInspect("{\"Name\":3}").status().message(), "docker inspect: Name is not a string");
  EXPECT_EQ(ParseDockerInspect("{\"Config\":{\"Labels\":[]}}").status().message(),
            "docker inspect: Config.Labels is not an object");
  EXPECT_EQ(ParseDockerInspect("{\"Config\":{\"Labels\":{\"io.kubernetes.pod.name\":1}}}").status().message(),
            "docker inspect: Config.Labels.io.kubernetes.pod.name is not a string");
  EXPECT_EQ(ParseCrioInspect("{\"labels\":\"x\"}").status().message(), "crio inspect: labels is not an object");
  // A container outside Kubernetes: a name and an image, no workload.
  auto plain = ParseDockerInspect("{\"Name\":\"/redis-1\",\"Config\":{\"Image\":\"redis:7\",\"Labels\":null}}");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->name(), "redis-1");
  EXPECT_EQ(plain->workload(), "");
}

TEST(ContainerMeta, WorkloadsFromGeneratedPodNames) {
  EXPECT_EQ(WorkloadOfPod("api-7d9c5b6f4-x2x9q"), "api");                 // Deployment
  EXPECT_EQ(WorkloadOfPod("shop-frontend-6b8f9c7d5d-9zt4k"), "shop-frontend");
  EXPECT_EQ(WorkloadOfPod("node-agent-x2x9q"), "node-agent");             // DaemonSet, Job
  EXPECT_EQ(WorkloadOfPod("backup-28411200-x2x9q"), "backup");            // CronJob's Job
  EXPECT_EQ(WorkloadOfPod("db-0"), "db");                                 // StatefulSet
  EXPECT_EQ(WorkloadOfPod("kafka-broker-12"), "kafka-broker");
  EXPECT_EQ(WorkloadOfPod("web-server"), "web-server");                   // vowels: not generated
  EXPECT_EQ(WorkloadOfPod("api-abcde"), "api-abcde");
  EXPECT_EQ(WorkloadOfPod("x2x9q"), "x2x9q");                             // nothing before it
  EXPECT_EQ(WorkloadOfPod("static-pod"), "static-pod");
  EXPECT_EQ(WorkloadOfPod(""), "");
}

class ResolverTest : public ::testing::Test {
 protected:
  std::string Socket(const std::string& name) {
    return ::testing::TempDir() + "fl-meta-" + std::to_string(getpid()) + "-" + name + ".sock";
  }
};

TEST_F(ResolverTest, AsksTheRuntimeTheCgroupNamesFirstAndCachesAnswersAndMisses) {
  const std::string podman_path = Socket("podman"), crio_path = Socket("crio");
  ReplayServer podman(podman_path, [](const ReplayServer::Request& r, int fd) {
    ReplayServer::Write(fd, r.target == "/v1.24/containers/" + kPodmanId + "/json"
                                ? ReplayServer::Answer(200, Data("podman_inspect.json"))
                                : ReplayServer::Answer(404, "{\"message\":\"no such container\"}"));
  });
  ReplayServer crio(crio_path, [](const ReplayServer::Request& r, int fd) {
    ReplayServer::Write(fd, r.target == "/containers/" + kCrioId
                                ? ReplayServer::Answer(200, Data("crio_inspect.json"))
                                : ReplayServer::Answer(404, "container not found", "text/plain"));
  });
  ContainerMetaOptions o;
  o.sockets = {{"podman", podman_path}, {"crio", crio_path}};
  ContainerMetaResolver r(o);
  const auto t0 = Clock::now();
  const v1::ContainerMeta* m = r.Lookup(kCrioId, "crio", t0);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->pod_name(), "checkout-5f7b8c9d6-q2w4z");
  EXPECT_EQ(podman.targets().size(), 0u);  // the cgroup said crio: asked first, and it knew
  ASSERT_NE(r.Lookup(kPodmanId, "", t0), nullptr);
  EXPECT_EQ(r.Lookup(kPodmanId, "", t0)->container_name(), "api");  // cached: no new request
  EXPECT_EQ(podman.targets().size(), 1u);
  const std::string unknown(64, 'e');
  EXPECT_EQ(r.Lookup(unknown, "", t0), nullptr);
  EXPECT_EQ(r.Lookup(unknown, "", t0 + std::chrono::seconds(29)), nullptr);  // the miss is cached
  EXPECT_EQ(podman.targets().size(), 2u);
  EXPECT_EQ(r.Lookup(unknown, "", t0 + std::chrono::seconds(31)), nullptr);  // asked again
  EXPECT_EQ(podman.targets().size(), 3u);
  EXPECT_EQ(r.stats().lookups, 4u);
  EXPECT_EQ(r.stats().resolved, 2u);
  EXPECT_EQ(r.stats().unknown, 2u);
  EXPECT_EQ(r.stats().socket_errors, 0u);
}

TEST_F(ResolverTest, AMissingOrBrokenSocketIsBackedOffNotAskedPerContainer) {
  const std::string broken_path = Socket("broken");
  ReplayServer broken(broken_path, [](const ReplayServer::Request&, int fd) {
    ReplayServer::Write(fd, ReplayServer::Answer(200, "{\"Name\": [unclosed"));
  });
  ContainerMetaOptions o;
  o.sockets = {{"docker", Socket("absent")}, {"docker", broken_path}};
  ContainerMetaResolver r(o);
  const auto t0 = Clock::now();
  EXPECT_EQ(r.Lookup(std::string(64, '1'), "docker", t0), nullptr);
  EXPECT_EQ(r.stats().socket_errors, 2u);  // absent, then a malformed answer
  EXPECT_EQ(broken.targets().size(), 1u);
  // Other containers within the back-off ask nobody.
  EXPECT_EQ(r.Lookup(std::string(64, '2'), "docker", t0 + std::chrono::seconds(1)), nullptr);
  EXPECT_EQ(r.stats().socket_errors, 2u);
  EXPECT_EQ(broken.targets().size(), 1u);
  EXPECT_EQ(r.Lookup(std::string(64, '3'), "docker", t0 + std::chrono::seconds(31)), nullptr);
  EXPECT_EQ(r.stats().socket_errors, 4u);
  EXPECT_EQ(broken.targets().size(), 2u);
}

TEST_F(ResolverTest, ContainerdTasksAreFoundInTheirNamespaceDirectory) {
  const std::string tasks = ::testing::TempDir() + "fl-tasks-" + std::to_string(getpid());
  const std::string id = "4a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5061728394a5b6c7d8e9f";
  std::filesystem::create_directories(tasks + "/moby");
  std::filesystem::create_directories(tasks + "/k8s.io/" + id);
  { std::ofstream(tasks + "/k8s.io/" + id + "/config.json") << Data("containerd_config.json"); }
  ContainerMetaOptions o;
  o.sockets = {{"containerd", tasks}};
  ContainerMetaResolver r(o);
  const auto t0 = Clock::now();
  const v1::ContainerMeta* m = r.Lookup(id, "containerd", t0);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->pod_namespace() + "/" + m->workload(), "shop/checkout");
  EXPECT_EQ(r.Lookup(std::string(64, 'f'), "containerd", t0), nullptr);  // no such task
  EXPECT_EQ(r.stats().unknown, 1u);
  EXPECT_EQ(r.stats().socket_errors, 0u);
  std::filesystem::remove_all(tasks);
}

std::string HexId(int i) {
  char id[65];
  std::snprintf(id, sizeof(id), "%064x", i);
  return id;
}

TEST_F(ResolverTest, TheCacheStaysWithinItsCapacityAndKeepsTheNewest) {
  ContainerMetaOptions o;
  o.sockets = {};
  o.capacity = 16;
  ContainerMetaResolver r(o);
  const auto t0 = Clock::now();
  for (int i = 0; i < 40; ++i) r.Lookup(HexId(i), "", t0 + std::chrono::milliseconds(i));
  // Full at 16, it drops its oldest eighth (2) before an insert: 16, 15, 16, … after 40 inserts.
  EXPECT_EQ(r.size(), 16u);
  EXPECT_EQ(r.stats().lookups, 40u);
  EXPECT_EQ(r.stats().evictions, 24u);
  // The newest 16 misses are still cached: asked about again, nothing is looked up.
  for (int i = 24; i < 40; ++i) r.Lookup(HexId(i), "", t0 + std::chrono::seconds(1));
  EXPECT_EQ(r.stats().lookups, 40u);
  // The oldest were dropped: each is looked up again.
  r.Lookup(HexId(0), "", t0 + std::chrono::seconds(1));
  EXPECT_EQ(r.stats().lookups, 41u);
}

// The cache is read, not the runtime: what a task directory said is kept after the directory
// changes or goes, for as long as the entry stays in the cache (an answer does not expire; a
// container's metadata does not change while it runs), and only an evicted entry is read again.
TEST_F(ResolverTest, ACachedAnswerIsServedWithoutAskingTheRuntimeAgain) {
  const std::string tasks = ::testing::TempDir() + "fl-cache-" + std::to_string(getpid());
  std::filesystem::remove_all(tasks);
  auto write_task = [&](int i, const std::string& pod) {
    std::filesystem::create_directories(tasks + "/k8s.io/" + HexId(i));
    std::ofstream(tasks + "/k8s.io/" + HexId(i) + "/config.json")
        << "{\"annotations\":{\"io.kubernetes.cri.sandbox-namespace\":\"shop\","
           "\"io.kubernetes.cri.sandbox-name\":\""
        << pod << "\",\"io.kubernetes.cri.container-name\":\"c\"}}";
  };
  constexpr int kCapacity = 8;
  for (int i = 0; i < kCapacity; ++i) write_task(i, "before-" + std::to_string(i));
  ContainerMetaOptions o;
  o.sockets = {{"containerd", tasks}};
  o.capacity = kCapacity;
  ContainerMetaResolver r(o);
  const auto t0 = Clock::now();
  for (int i = 0; i < kCapacity; ++i) {
    const v1::ContainerMeta* m =
        r.Lookup(HexId(i), "containerd", t0 + std::chrono::milliseconds(i));
    ASSERT_NE(m, nullptr) << i;
    EXPECT_EQ(m->pod_name(), "before-" + std::to_string(i));
  }
  EXPECT_EQ(r.stats().lookups, static_cast<uint64_t>(kCapacity));
  // Every task's bundle now says something else; an hour later the cache still answers.
  for (int i = 0; i < kCapacity; ++i) write_task(i, "after-" + std::to_string(i));
  const auto later = t0 + std::chrono::hours(1);
  for (int i = 0; i < kCapacity; ++i) {
    const v1::ContainerMeta* m = r.Lookup(HexId(i), "containerd", later);
    ASSERT_NE(m, nullptr) << i;
    EXPECT_EQ(m->pod_name(), "before-" + std::to_string(i)) << "container " << i << " read again";
  }
  EXPECT_EQ(r.size(), static_cast<size_t>(kCapacity));
  EXPECT_EQ(r.stats().lookups, static_cast<uint64_t>(kCapacity));
  EXPECT_EQ(r.stats().resolved, static_cast<uint64_t>(kCapacity));
  EXPECT_EQ(r.stats().evictions, 0u);
  // One more container: the oldest entry (container 0) makes room, and only it is read again.
  write_task(kCapacity, "new");
  ASSERT_NE(r.Lookup(HexId(kCapacity), "containerd", later), nullptr);
  EXPECT_EQ(r.stats().evictions, 1u);
  for (int i = 1; i <= kCapacity; ++i) ASSERT_NE(r.Lookup(HexId(i), "containerd", later), nullptr);
  EXPECT_EQ(r.stats().lookups, static_cast<uint64_t>(kCapacity) + 1);
  EXPECT_EQ(r.Lookup(HexId(1), "containerd", later)->pod_name(), "before-1");
  const v1::ContainerMeta* reread = r.Lookup(HexId(0), "containerd", later);
  ASSERT_NE(reread, nullptr);
  EXPECT_EQ(reread->pod_name(), "after-0");
  EXPECT_EQ(r.stats().lookups, static_cast<uint64_t>(kCapacity) + 2);
  std::filesystem::remove_all(tasks);
}

}  // namespace
}  // namespace faultline::agent
