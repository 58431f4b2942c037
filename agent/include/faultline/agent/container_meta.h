// Container metadata from the container runtime, as Kubernetes nodes run it: the runtime's name
// for the container, its image, and the labels the kubelet sets on every container it starts
// (io.kubernetes.pod.namespace, io.kubernetes.pod.name, io.kubernetes.container.name,
// io.kubernetes.pod.uid), from which the pod's workload is derived.
//
// Runtimes asked, over their local sockets (HTTP/1.1 over a unix socket, through libcurl):
//   docker, podman: the Docker Engine API, GET /containers/{id}/json (Podman serves the same API:
//                   `podman system service`);
//   crio:           CRI-O's inspect endpoint, GET /containers/{id};
//   containerd:     its socket speaks only gRPC, so the agent reads what containerd's runtime v2
//                   keeps for each running task instead: the OCI bundle's config.json under
//                   /run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>/, whose
//                   annotations the CRI plugin fills (io.kubernetes.cri.sandbox-name, …).
//
// ContainerMetaResolver is called on the agent's thread the first time a container is seen; a
// lookup is bounded by a short timeout, a runtime whose socket fails is left alone for a while
// (one failure per interval, not one per container), answers and misses are cached (bounded), and
// every miss, error and eviction is counted. With no runtime socket at all it answers nothing,
// quickly, and the agent names processes by their cgroup and command. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "events.pb.h"
#include "faultline/common/status.h"

namespace faultline::agent {

struct RuntimeSocket {
  std::string runtime;  // "docker", "podman" or "crio": which API the socket speaks; "containerd":
                        // `path` is containerd's runtime v2 task directory
  std::string path;
};

struct ContainerMetaOptions {
  // Tried in order for a container whose runtime the cgroup path does not name, and first for
  // the runtime it names. Default: docker /run/docker.sock, podman /run/podman/podman.sock,
  // crio /run/crio/crio.sock, containerd /run/containerd/io.containerd.runtime.v2.task.
  std::vector<RuntimeSocket> sockets = {
      {"docker", "/run/docker.sock"},
      {"podman", "/run/podman/podman.sock"},
      {"crio", "/run/crio/crio.sock"},
      {"containerd", "/run/containerd/io.containerd.runtime.v2.task"}};
  // Bound of the cache (answers and misses). Default: 4096 containers.
  size_t capacity = 4096;
  // A container no runtime knew is asked again after this long. Default: 30 s.
  std::chrono::seconds miss_retry{30};
  // A socket that failed (absent, refused, timed out, malformed answer) is skipped this long.
  // Default: 30 s.
  std::chrono::seconds socket_backoff{30};
  // Per request. Default: 250 ms.
  std::chrono::milliseconds timeout{250};
};

// The Docker Engine API's container inspect answer (Docker and Podman) as metadata. Errors:
// kInvalidArgument naming what is malformed ("not JSON at byte 12", "Config.Labels is not an
// object").
Result<v1::ContainerMeta> ParseDockerInspect(std::string_view json);
// CRI-O's container inspect answer as metadata. Errors as ParseDockerInspect.
Result<v1::ContainerMeta> ParseCrioInspect(std::string_view json);
// An OCI runtime bundle's config.json as metadata, from its annotations: containerd's CRI plugin
// (io.kubernetes.cri.*) or CRI-O (io.kubernetes.pod.*). Errors as ParseDockerInspect.
Result<v1::ContainerMeta> ParseOciConfig(std::string_view json);

// The workload that owns a pod, from the pod's name as Kubernetes' controllers generate it:
// "api-7d9c5b6f4-x2x9q" (a Deployment's ReplicaSet) -> "api", "agent-x2x9q" (a DaemonSet or a
// Job) -> "agent", "backup-28411200-x2x9q" (a CronJob's Job) -> "backup", "db-0" (a
// StatefulSet) -> "db"; any other name is its own workload. Generated suffixes use Kubernetes'
// alphabet for random strings (no vowels, no 0, 1 or 3), which keeps "web-server" intact.
std::string WorkloadOfPod(std::string_view pod_name);
// Whether every character is of that alphabet ("bcdfghjklmnpqrstvwxz2456789"): a generated name
// part (a pod's suffix, a ReplicaSet's pod-template-hash).
bool IsKubernetesGenerated(std::string_view s);

class ContainerMetaResolver {
 public:
  explicit ContainerMetaResolver(ContainerMetaOptions options = {});

  // The metadata of container `container_id` (64 hex characters), asking the runtime `runtime`
  // names ("docker", "podman", "crio", "containerd" or "" when the cgroup path did not say)
  // first. Null when no runtime knows it (or none could be asked); the answer is valid until the
  // next call.
  const v1::ContainerMeta* Lookup(const std::string& container_id, std::string_view runtime,
                                  std::chrono::steady_clock::time_point now);

  struct Stats {
    uint64_t lookups = 0;       // containers asked about (cache misses)
    uint64_t resolved = 0;      // answers from a runtime
    uint64_t unknown = 0;       // no runtime asked knew the container
    uint64_t socket_errors = 0; // requests that failed (absent socket, timeout, bad answer)
    uint64_t evictions = 0;     // cache entries dropped to stay within capacity
  };
  const Stats& stats() const { return stats_; }
  size_t size() const { return cache_.size(); }

 private:
  struct Entry {
    bool found = false;
    v1::ContainerMeta meta;
    std::chrono::steady_clock::time_point at;
  };
  // One runtime's answer: found (true), not known there (false), or an error (status).
  Result<bool> Ask(const RuntimeSocket& socket, const std::string& id, v1::ContainerMeta* meta);
  void EvictOldest();

  ContainerMetaOptions options_;
  std::vector<std::chrono::steady_clock::time_point> down_until_;  // per socket
  std::unordered_map<std::string, Entry> cache_;
  Stats stats_;
};

}  // namespace faultline::agent
