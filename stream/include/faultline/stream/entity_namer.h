// The identity join's naming rules: how a process seen by an agent becomes a service and an
// instance, and how an HTTP request becomes an endpoint. Services are named from a template over
// the process identity the agent sends with every batch, so a platform team can name them by
// container, pod or process as their cluster is organised.
//
// Template fields: {comm} (process name), {container} (container id, first 12 characters),
// {pod} (pod UID), {cgroup} (last element of the cgroup path), {machine} (node name), {pid}, and
// from the container runtime's metadata (ContainerMeta): {namespace} (the pod's namespace),
// {workload} (the pod's owner: Deployment, StatefulSet, DaemonSet, Job...), {pod_name},
// {container_name} (Kubernetes' container name, else the runtime's), {image}.
// A field with no value (no container, say) makes the template fall back to the next one in
// `service_templates` whose fields all have values; the last one must always resolve.
//
// Thread-compatible; pure functions of their inputs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"

namespace faultline::v1 {
class ProcessIdentity;  // events.pb.h
class ContainerMeta;
}  // namespace faultline::v1

namespace faultline::stream {

struct NamingOptions {
  // Tried in order; the first whose fields all have values names the service.
  // Default: {"{namespace}/{workload}", "{container_name}", "{comm}"}: the Kubernetes workload,
  // else the container's name, else the process name.
  std::vector<std::string> service_templates = {"{namespace}/{workload}", "{container_name}",
                                                "{comm}"};
  // Default: "{machine}/{pid}".
  std::string instance_template = "{machine}/{pid}";
};

// A cgroup's entity name, the same for its processes' series and for its resource series: the
// Kubernetes "{namespace}/{pod}/{container}" when the runtime named them, else the runtime's
// container name, else the container id's first 12 characters, else "{machine}:{cgroup path}" (a
// systemd unit or any other cgroup: unique only with its machine). "" for the root cgroup and an
// empty path. `meta` may be null.
std::string ContainerName(std::string_view machine, std::string_view cgroup_path,
                          std::string_view container_id, const v1::ContainerMeta* meta);

class EntityNamer {
 public:
  // Errors: kInvalidArgument naming the template and the unknown or unclosed field, or a last
  // service template that can be empty ({container} or {pod} alone).
  static Result<EntityNamer> Create(const NamingOptions& options);

  // `process` may be null (the agent did not know the pid): the service is "unknown".
  std::string Service(const v1::ProcessIdentity* process, uint32_t pid,
                      std::string_view machine) const;
  std::string Instance(const v1::ProcessIdentity* process, uint32_t pid,
                       std::string_view machine) const;

  // "GET /users/:id/orders": numeric segments become :id, UUIDs :uuid, long hex strings :hex, and
  // the path is cut at 128 characters; an empty method or path becomes "-".
  static std::string Endpoint(std::string_view method, std::string_view path);
  // The same, appended to `out` (no allocation once `out` has grown).
  static void AppendEndpoint(std::string_view method, std::string_view path, std::string* out);

 private:
  struct Template {
    std::string text;
    std::vector<std::string> fields;
  };
  static Result<Template> Parse(const std::string& text);
  // Empty when a field of the template has no value.
  static std::string Expand(const Template& t, const v1::ProcessIdentity* process, uint32_t pid,
                            std::string_view machine);

  std::vector<Template> service_;
  Template instance_;
};

}  // namespace faultline::stream
