#include "faultline/agent/container_meta.h"

#include <curl/curl.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

namespace faultline::agent {
namespace {

using nlohmann::json;

constexpr std::string_view kPodNamespace = "io.kubernetes.pod.namespace";
constexpr std::string_view kPodName = "io.kubernetes.pod.name";
constexpr std::string_view kContainerName = "io.kubernetes.container.name";
constexpr std::string_view kPodUid = "io.kubernetes.pod.uid";
constexpr size_t kMaxAnswer = 4 << 20;  // an inspect answer is a few KiB; anything bigger is wrong

Result<json> ParseObject(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("not JSON");
  if (!j.is_object()) return InvalidArgument("not a JSON object");
  return j;
}

// The string at `key` of object `o`, "" when absent; an error when present and not a string.
Status StringAt(const json& o, const char* key, const std::string& where, std::string* out) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return Status::Ok();
  if (!it->is_string()) return InvalidArgument(where + key + " is not a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

// Fills the Kubernetes fields from a labels (or annotations) object.
Status FromLabels(const json& o, const char* key, const std::string& where, v1::ContainerMeta* m) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) return InvalidArgument(where + key + " is not an object");
  auto label = [&](std::string_view name, std::string* dst) -> Status {
    auto l = it->find(name);
    if (l == it->end()) return Status::Ok();
    if (!l->is_string()) return InvalidArgument(where + key + "." + std::string(name) + " is not a string");
    if (dst->empty()) *dst = l->get<std::string>();
    return Status::Ok();
  };
  FAULTLINE_RETURN_IF_ERROR(label(kPodNamespace, m->mutable_pod_namespace()));
  FAULTLINE_RETURN_IF_ERROR(label(kPodName, m->mutable_pod_name()));
  FAULTLINE_RETURN_IF_ERROR(label(kContainerName, m->mutable_container_name()));
  return label(kPodUid, m->mutable_pod_uid());
}

void Finish(v1::ContainerMeta* m) {
  if (!m->pod_name().empty()) m->set_workload(WorkloadOfPod(m->pod_name()));
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}
std::string_view LastToken(std::string_view s) {
  const size_t dash = s.rfind('-');
  return dash == std::string_view::npos ? std::string_view() : s.substr(dash + 1);
}
std::string_view DropLastToken(std::string_view s) { return s.substr(0, s.rfind('-')); }

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  auto* body = static_cast<std::string*>(user);
  if (body->size() + size * n > kMaxAnswer) return 0;  // stops the transfer: an error
  body->append(data, size * n);
  return size * n;
}

}  // namespace

bool IsKubernetesGenerated(std::string_view s) {
  // k8s.io/apimachinery/pkg/util/rand: "bcdfghjklmnpqrstvwxz2456789".
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::string_view("bcdfghjklmnpqrstvwxz2456789").find(c) != std::string_view::npos;
  });
}

std::string WorkloadOfPod(std::string_view pod) {
  std::string_view last = LastToken(pod);
  if (last.size() == 5 && IsKubernetesGenerated(last)) {
    std::string_view rest = DropLastToken(pod);
    const std::string_view hash = LastToken(rest);
    // A ReplicaSet's pod-template-hash (6 to 10 generated characters) or a CronJob's scheduled
    // time in minutes (8 digits or more) between the owner's name and the pod's suffix.
    if (!DropLastToken(rest).empty() && hash.size() >= 6 &&
        ((hash.size() <= 10 && IsKubernetesGenerated(hash)) || (hash.size() >= 8 && AllDigits(hash)))) {
      rest = DropLastToken(rest);
    }
    if (!rest.empty()) return std::string(rest);
  }
  if (AllDigits(last) && !DropLastToken(pod).empty()) return std::string(DropLastToken(pod));
  return std::string(pod);
}

Result<v1::ContainerMeta> ParseDockerInspect(std::string_view text) {
  auto j = ParseObject(text);
  if (!j.ok()) return InvalidArgument("docker inspect: " + j.status().message());
  v1::ContainerMeta m;
  std::string name;
  FAULTLINE_RETURN_IF_ERROR(StringAt(*j, "Name", "docker inspect: ", &name));
  if (!name.empty() && name[0] == '/') name.erase(0, 1);
  m.set_name(name);
  auto config = j->find("Config");
  if (config != j->end() && !config->is_null()) {
    if (!config->is_object()) return InvalidArgument("docker inspect: Config is not an object");
    FAULTLINE_RETURN_IF_ERROR(StringAt(*config, "Image", "docker inspect: Config.", m.mutable_image()));
    FAULTLINE_RETURN_IF_ERROR(FromLabels(*config, "Labels", "docker inspect: Config.", &m));
  }
  Finish(&m);
  return m;
}

Result<v1::ContainerMeta> ParseOciConfig(std::string_view text) {
  auto j = ParseObject(text);
  if (!j.ok()) return InvalidArgument("OCI config: " + j.status().message());
  v1::ContainerMeta m;
  auto it = j->find("annotations");
  if (it == j->end() || it->is_null()) return m;
  if (!it->is_object()) return InvalidArgument("OCI config: annotations is not an object");
  const struct {
    const char* key;
    std::string* dst;
  } fields[] = {{"io.kubernetes.cri.sandbox-namespace", m.mutable_pod_namespace()},
                {"io.kubernetes.cri.sandbox-name", m.mutable_pod_name()},
                {"io.kubernetes.cri.container-name", m.mutable_container_name()},
                {"io.kubernetes.cri.sandbox-uid", m.mutable_pod_uid()},
                {"io.kubernetes.cri.image-name", m.mutable_image()}};
  for (const auto& f : fields) {
    FAULTLINE_RETURN_IF_ERROR(StringAt(*it, f.key, "OCI config: annotations.", f.dst));
  }
  // CRI-O writes the kubelet's labels as annotations.
  FAULTLINE_RETURN_IF_ERROR(FromLabels(*j, "annotations", "OCI config: ", &m));
  Finish(&m);
  return m;
}

Result<v1::ContainerMeta> ParseCrioInspect(std::string_view text) {
  auto j = ParseObject(text);
  if (!j.ok()) return InvalidArgument("crio inspect: " + j.status().message());
  v1::ContainerMeta m;
  FAULTLINE_RETURN_IF_ERROR(StringAt(*j, "name", "crio inspect: ", m.mutable_name()));
  FAULTLINE_RETURN_IF_ERROR(StringAt(*j, "image", "crio inspect: ", m.mutable_image()));
  FAULTLINE_RETURN_IF_ERROR(FromLabels(*j, "labels", "crio inspect: ", &m));
  FAULTLINE_RETURN_IF_ERROR(FromLabels(*j, "annotations", "crio inspect: ", &m));
  Finish(&m);
  return m;
}

ContainerMetaResolver::ContainerMetaResolver(ContainerMetaOptions options)
    : options_(std::move(options)), down_until_(options_.sockets.size()) {}

Result<bool> ContainerMetaResolver::Ask(const RuntimeSocket& socket, const std::string& id,
                                        v1::ContainerMeta* meta) {
  if (socket.runtime == "containerd") {
    // <path>/<namespace>/<id>/config.json: the namespaces are the directories (k8s.io, moby, …).
    std::error_code ec;
    std::filesystem::directory_iterator dir(socket.path, ec);
    if (ec) return Unavailable(socket.path + ": " + ec.message());
    for (const auto& ns : dir) {
      std::ifstream f(ns.path() / id / "config.json");
      if (!f) continue;
      std::string body((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      if (body.size() > kMaxAnswer) return Unavailable(socket.path + ": config.json of " + id + " is too large");
      auto parsed = ParseOciConfig(body);
      if (!parsed.ok()) return Unavailable((ns.path() / id).string() + ": " + parsed.status().message());
      *meta = std::move(parsed).value();
      return true;
    }
    return false;
  }
  CURL* curl = curl_easy_init();
  if (!curl) return Internal("curl_easy_init failed");
  std::string body;
  const bool crio = socket.runtime == "crio";
  // The host part is ignored on a unix socket; the API version is Docker's oldest that Podman's
  // compatible API serves too.
  const std::string url = crio ? "http://localhost/containers/" + id
                               : "http://localhost/v1.24/containers/" + id + "/json";
  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket.path.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) return Unavailable(socket.path + ": " + curl_easy_strerror(rc));
  if (status == 404) return false;
  if (status != 200) return Unavailable(socket.path + ": HTTP " + std::to_string(status));
  auto parsed = crio ? ParseCrioInspect(body) : ParseDockerInspect(body);
  if (!parsed.ok()) return Unavailable(socket.path + ": " + parsed.status().message());
  *meta = std::move(parsed).value();
  return true;
}

const v1::ContainerMeta* ContainerMetaResolver::Lookup(const std::string& id, std::string_view runtime,
                                                       std::chrono::steady_clock::time_point now) {
  if (id.empty()) return nullptr;
  auto it = cache_.find(id);
  if (it != cache_.end() && (it->second.found || now - it->second.at < options_.miss_retry)) {
    return it->second.found ? &it->second.meta : nullptr;
  }
  if (it == cache_.end() && cache_.size() >= options_.capacity) EvictOldest();
  Entry& e = cache_[id];
  e.at = now;
  e.found = false;
  stats_.lookups++;
  // The runtime the cgroup path names first, then the others.
  std::vector<size_t> order;
  for (size_t i = 0; i < options_.sockets.size(); ++i) {
    if (options_.sockets[i].runtime == runtime) order.insert(order.begin(), i);
    else order.push_back(i);
  }
  for (size_t i : order) {
    if (now < down_until_[i]) continue;
    auto found = Ask(options_.sockets[i], id, &e.meta);
    if (!found.ok()) {
      stats_.socket_errors++;
      down_until_[i] = now + options_.socket_backoff;
      continue;
    }
    if (*found) {
      e.found = true;
      stats_.resolved++;
      return &e.meta;
    }
  }
  stats_.unknown++;
  return nullptr;
}

void ContainerMetaResolver::EvictOldest() {
  // The oldest eighth in one pass: O(1) amortized per insert.
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::string>> ages;
  ages.reserve(cache_.size());
  for (const auto& [id, e] : cache_) ages.emplace_back(e.at, id);
  const size_t n = std::max<size_t>(1, ages.size() / 8);
  std::nth_element(ages.begin(), ages.begin() + static_cast<std::ptrdiff_t>(n - 1), ages.end());
  for (size_t i = 0; i < n; ++i) cache_.erase(ages[i].second);
  stats_.evictions += n;
}

}  // namespace faultline::agent
