#include "faultline/stream/entity_namer.h"

#include <algorithm>
#include <cctype>

#include "events.pb.h"

namespace faultline::stream {
namespace {

constexpr std::string_view kFields[] = {"comm",     "container",      "pod",   "cgroup",
                                        "machine",  "pid",            "namespace", "workload",
                                        "pod_name", "container_name", "image"};
constexpr size_t kMaxPath = 128;

std::string_view FieldValue(std::string_view field, const v1::ProcessIdentity* p, uint32_t pid,
                            std::string_view machine, std::string* scratch) {
  if (field == "machine") return machine;
  if (field == "pid") return *scratch = std::to_string(pid);
  if (!p) return {};
  if (field == "comm") return p->comm();
  if (field == "namespace") return p->container().pod_namespace();
  if (field == "workload") return p->container().workload();
  if (field == "pod_name") return p->container().pod_name();
  if (field == "image") return p->container().image();
  if (field == "container_name") {
    return p->container().container_name().empty() ? std::string_view(p->container().name())
                                                   : std::string_view(p->container().container_name());
  }
  if (field == "container") return std::string_view(p->container_id()).substr(0, 12);
  if (field == "pod") return p->pod_uid();
  if (field == "cgroup") {
    std::string_view path = p->cgroup_path();
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    const size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
  }
  return {};
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
}
bool AllHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}
bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < 36; ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

}  // namespace

std::string ContainerName(std::string_view machine, std::string_view cgroup_path,
                          std::string_view container_id, const v1::ContainerMeta* meta) {
  if (meta && !meta->pod_namespace().empty() && !meta->pod_name().empty() &&
      !meta->container_name().empty()) {
    return meta->pod_namespace() + "/" + meta->pod_name() + "/" + meta->container_name();
  }
  if (meta && !meta->name().empty()) return meta->name();
  if (!container_id.empty()) return std::string(container_id.substr(0, 12));
  while (!cgroup_path.empty() && cgroup_path.back() == '/') cgroup_path.remove_suffix(1);
  if (cgroup_path.empty()) return {};
  std::string out(machine);
  out.push_back(':');
  if (cgroup_path.front() != '/') out.push_back('/');
  out.append(cgroup_path);
  return out;
}

Result<EntityNamer::Template> EntityNamer::Parse(const std::string& text) {
  Template t{text, {}};
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '}') return InvalidArgument("naming template '" + text + "': '}' without '{'");
    if (text[i] != '{') continue;
    const size_t close = text.find('}', i);
    if (close == std::string::npos)
      return InvalidArgument("naming template '" + text + "': '{' is not closed");
    const std::string field = text.substr(i + 1, close - i - 1);
    if (std::find(std::begin(kFields), std::end(kFields), field) == std::end(kFields)) {
      return InvalidArgument("naming template '" + text + "': unknown field {" + field +
                             "} (known: comm, container, pod, cgroup, machine, pid, namespace, "
                             "workload, pod_name, container_name, image)");
    }
    t.fields.push_back(field);
    i = close;
  }
  return t;
}

Result<EntityNamer> EntityNamer::Create(const NamingOptions& options) {
  if (options.service_templates.empty()) return InvalidArgument("naming: no service template");
  EntityNamer n;
  for (const std::string& text : options.service_templates) {
    FAULTLINE_ASSIGN_OR_RETURN(Template t, Parse(text));
    n.service_.push_back(std::move(t));
  }
  for (const std::string& f : n.service_.back().fields) {
    if (f != "comm" && f != "machine" && f != "pid") {
      return InvalidArgument(
          "naming: the last service template '" + n.service_.back().text + "' uses {" + f +
          "}, which a process may not have; end with one that always resolves, such as {comm}");
    }
  }
  FAULTLINE_ASSIGN_OR_RETURN(n.instance_, Parse(options.instance_template));
  return n;
}

std::string EntityNamer::Expand(const Template& t, const v1::ProcessIdentity* process, uint32_t pid,
                                std::string_view machine) {
  std::string out, scratch;
  for (size_t i = 0; i < t.text.size(); ++i) {
    if (t.text[i] != '{') {
      out.push_back(t.text[i]);
      continue;
    }
    const size_t close = t.text.find('}', i);
    const std::string_view value = FieldValue(std::string_view(t.text).substr(i + 1, close - i - 1),
                                              process, pid, machine, &scratch);
    if (value.empty()) return {};
    out.append(value);
    i = close;
  }
  return out;
}

std::string EntityNamer::Service(const v1::ProcessIdentity* process, uint32_t pid,
                                 std::string_view machine) const {
  if (!process) return "unknown";
  for (const Template& t : service_) {
    std::string name = Expand(t, process, pid, machine);
    if (!name.empty()) return name;
  }
  return "unknown";
}

std::string EntityNamer::Instance(const v1::ProcessIdentity* process, uint32_t pid,
                                  std::string_view machine) const {
  std::string name = Expand(instance_, process, pid, machine);
  return name.empty() ? std::string(machine) + "/" + std::to_string(pid) : name;
}

std::string EntityNamer::Endpoint(std::string_view method, std::string_view path) {
  std::string out;
  AppendEndpoint(method, path, &out);
  return out;
}

void EntityNamer::AppendEndpoint(std::string_view method, std::string_view path, std::string* out) {
  out->append(method.empty() ? std::string_view("-") : method);
  out->push_back(' ');
  if (path.empty()) {
    out->push_back('-');
    return;
  }
  path = path.substr(0, kMaxPath);
  size_t start = 0;
  while (start <= path.size()) {
    const size_t slash = path.find('/', start);
    const std::string_view seg = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (AllDigits(seg)) {
      out->append(":id");
    } else if (IsUuid(seg)) {
      out->append(":uuid");
    } else if (seg.size() >= 16 && AllHex(seg)) {
      out->append(":hex");
    } else {
      out->append(seg);
    }
    if (slash == std::string_view::npos) break;
    out->push_back('/');
    start = slash + 1;
  }
}

}  // namespace faultline::stream
