// The identity join's naming rules: how a process seen by an agent becomes a service and an
// instance, and how an HTTP request becomes an endpoint. Services are named from a template over
// the process identity the agent sends with every batch, so a platform team can name them by
// container, pod or process as their cluster is organised.
//
// Template fields: {comm} (process name), {container} (container id, first 12 characters),
// {pod} (pod UID), {cgroup} (last element of the cgroup path), {machine} (node name), {pid}.
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
}  // namespace faultline::v1

namespace faultline::stream {

struct NamingOptions {
  // Tried in order; the first whose fields all have values names the service.
  // Default: {"{comm}"}.
  std::vector<std::string> service_templates = {"{comm}"};
  // Default: "{machine}/{pid}".
  std::string instance_template = "{machine}/{pid}";
};

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
