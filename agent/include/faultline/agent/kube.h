// A Kubernetes API client for the few objects faultline names addresses with: pods (an agent
// watches its own node's: their IPs, UIDs and owning workloads) and Services (their ClusterIPs).
//
// KubeWatch keeps one resource's objects in memory the way client-go's reflector does: LIST
// (paged with limit/continue), then WATCH from the list's resourceVersion with bookmarks; a watch
// that ends or drops is resumed from the last resourceVersion seen (an object's or a bookmark's);
// a 410 Gone (as the watch's HTTP status or as an ERROR event) means that version is too old: list
// again. Failures back off exponentially. The store is bounded: objects past `max_objects` are
// not kept, and counted. One thread per watch; lookups are thread-safe.
//
// In a pod, InClusterConfig reads the service-account token and CA and the API server's address
// from the environment, as client-go does. No API server can run on this machine: the client is
// tested against recorded list and watch answers replayed over HTTP (tests/agent/kube_test.cc).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "faultline/common/status.h"

namespace faultline::agent {

struct KubeConfig {
  std::string server;    // "https://10.96.0.1:443"
  std::string token;     // bearer token ("" for none)
  std::string ca_file;   // PEM bundle to verify the server with ("" for the system's)
};

// From KUBERNETES_SERVICE_HOST/PORT and /var/run/secrets/kubernetes.io/serviceaccount/ (under
// `root`, for tests). Errors: kUnavailable naming what is missing (not in a pod).
Result<KubeConfig> InClusterConfig(const std::string& root = "");

// What faultline keeps of an object.
struct KubeObject {
  std::string kind;       // "Pod", "Service"
  std::string ns, name, uid, resource_version;
  std::vector<std::string> ips;  // a pod's status.podIPs, a Service's spec.clusterIPs
  std::string node;              // a pod's spec.nodeName
  std::string workload;          // a pod's owning workload (from its controller owner reference)
};

// One object of a list or watch answer. Errors: kInvalidArgument naming the field.
Result<KubeObject> ParseKubeObject(std::string_view kind, const std::string& json_text);

// The workload of a pod from its controller owner reference: a ReplicaSet's Deployment (the
// ReplicaSet's name without its pod-template-hash), a Job's CronJob (without the scheduled
// time), else the owner itself; the pod's own name when it has no controller.
std::string WorkloadOfOwner(std::string_view owner_kind, std::string_view owner_name,
                            std::string_view pod_name);

struct KubeWatchOptions {
  // "/api/v1/pods", "/api/v1/services".
  std::string path;
  // "Pod", "Service": what ParseKubeObject keeps.
  std::string kind;
  // Added to LIST and WATCH ("fieldSelector=spec.nodeName%3Dnode-1"). Default: none.
  std::string selector;
  // Page size of LIST. Default: 500.
  int page_size = 500;
  // Objects kept at most; more are counted in stats().over_limit. Default: 200000.
  size_t max_objects = 200000;
  // Back-off after a failure: from `backoff_min`, doubling, at most `backoff_max`.
  // Defaults: 500 ms, 30 s.
  std::chrono::milliseconds backoff_min{500}, backoff_max{30000};
  // The server ends a watch after this long (it is resumed at once). Default: 300 s.
  int watch_timeout_s = 300;
  // Connect and request timeouts for LIST. Defaults: 5 s, 60 s.
  std::chrono::milliseconds connect_timeout{5000}, list_timeout{60000};
};

class KubeWatch {
 public:
  // Starts the watch thread.
  KubeWatch(KubeConfig config, KubeWatchOptions options);
  ~KubeWatch();  // stops the thread

  // The object with this IP ("10.244.1.7"), if any.
  std::optional<KubeObject> ByIp(std::string_view ip) const;
  // The object with this UID, if any.
  std::optional<KubeObject> ByUid(std::string_view uid) const;
  // Every object kept, by "namespace/name".
  std::map<std::string, KubeObject> Objects() const;

  struct Stats {
    uint64_t lists = 0;          // complete LISTs (each replaced the store)
    uint64_t watches = 0;        // WATCH requests started
    uint64_t events = 0;         // ADDED, MODIFIED, DELETED applied
    uint64_t bookmarks = 0;
    uint64_t gone = 0;           // 410 Gone: the version was too old, listed again
    uint64_t errors = 0;         // failed requests and malformed answers (backed off)
    uint64_t over_limit = 0;     // objects not kept: the store was full
    std::string resource_version;
  };
  Stats stats() const;
  // Grows on every change of the store (a cheap test for "rebuild my index").
  uint64_t generation() const { return generation_.load(std::memory_order_relaxed); }
  // Waits up to `timeout` until `done(stats())` holds after a change; false on timeout.
  bool WaitFor(const std::function<bool(const Stats&)>& done, std::chrono::milliseconds timeout) const;

 private:
  void Run();
  Status List();
  // Watches until the stream ends (Ok), a 410 arrives (kFailedPrecondition), or it fails.
  Status Watch();
  Status ApplyEvent(std::string_view line);
  void Put(KubeObject o);
  void Changed();

  KubeConfig config_;
  KubeWatchOptions options_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> generation_{0};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<std::string, KubeObject> objects_;  // by namespace/name
  Stats stats_;
  std::thread thread_;
};

}  // namespace faultline::agent
