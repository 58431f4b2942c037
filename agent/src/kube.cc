#include "faultline/agent/kube.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "faultline/agent/container_meta.h"
#include "faultline/common/log.h"

namespace faultline::agent {
namespace {

using nlohmann::json;

constexpr size_t kMaxLine = 16 << 20;  // one watch event; a pod is a few KiB

std::string ReadFile(const std::string& path, bool* ok) {
  std::ifstream f(path);
  *ok = static_cast<bool>(f);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

const json* Field(const json& o, const char* key) {
  auto it = o.find(key);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

Status GetString(const json& o, const char* key, const std::string& where, std::string* out) {
  const json* v = Field(o, key);
  if (!v) return Status::Ok();
  if (!v->is_string()) return InvalidArgument(where + key + " is not a string");
  *out = v->get<std::string>();
  return Status::Ok();
}

const json* Object(const json& o, const char* key, const std::string& where, Status* st) {
  const json* v = Field(o, key);
  if (v && !v->is_object()) *st = InvalidArgument(where + key + " is not an object");
  return v && v->is_object() ? v : nullptr;
}

// A curl handle for one request to the API server.
struct Request {
  CURL* curl = curl_easy_init();
  curl_slist* headers = nullptr;
  ~Request() {
    curl_slist_free_all(headers);
    if (curl) curl_easy_cleanup(curl);
  }
};

struct StreamState {
  std::string buffer;
  std::function<Status(std::string_view)> on_line;
  Status status;
  const std::atomic<bool>* stop = nullptr;
};

size_t OnStreamData(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<StreamState*>(user);
  s->buffer.append(data, size * n);
  size_t start = 0;
  for (size_t nl; (nl = s->buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(s->buffer.data() + start, nl - start);
    if (line.empty()) continue;
    Status st = s->on_line(line);
    if (!st.ok()) {
      s->status = std::move(st);
      return 0;  // stops the transfer
    }
  }
  s->buffer.erase(0, start);
  if (s->buffer.size() > kMaxLine) {
    s->status = InvalidArgument("a watch event longer than " + std::to_string(kMaxLine) + " bytes");
    return 0;
  }
  return size * n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<StreamState*>(user)->stop->load() ? 1 : 0;
}

}  // namespace

Result<KubeConfig> InClusterConfig(const std::string& root) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !port || !*host || !*port) {
    return Unavailable("not in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set");
  }
  const std::string dir = root + "/var/run/secrets/kubernetes.io/serviceaccount";
  KubeConfig c;
  const std::string h = host;
  c.server = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  bool ok = false;
  c.token = ReadFile(dir + "/token", &ok);
  if (!ok) return Unavailable("no service-account token at " + dir + "/token");
  c.ca_file = dir + "/ca.crt";
  std::ifstream ca(c.ca_file);
  if (!ca) return Unavailable("no service-account CA at " + c.ca_file);
  return c;
}

std::string WorkloadOfOwner(std::string_view kind, std::string_view owner, std::string_view pod) {
  if (owner.empty()) return std::string(pod);
  const size_t dash = owner.rfind('-');
  const std::string_view last = dash == std::string_view::npos ? std::string_view() : owner.substr(dash + 1);
  if (kind == "ReplicaSet" && dash != std::string_view::npos && last.size() >= 6 && last.size() <= 10 &&
      IsKubernetesGenerated(last)) {
    return std::string(owner.substr(0, dash));  // the Deployment's ReplicaSet
  }
  if (kind == "Job" && dash != std::string_view::npos && last.size() >= 8 &&
      std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::string(owner.substr(0, dash));  // the CronJob's Job
  }
  return std::string(owner);
}

Result<KubeObject> ParseKubeObject(std::string_view kind, const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("not a JSON object");
  KubeObject o;
  o.kind = std::string(kind);
  Status st;
  const json* meta = Object(j, "metadata", "", &st);
  FAULTLINE_RETURN_IF_ERROR(st);
  if (!meta) return InvalidArgument("no metadata");
  FAULTLINE_RETURN_IF_ERROR(GetString(*meta, "namespace", "metadata.", &o.ns));
  FAULTLINE_RETURN_IF_ERROR(GetString(*meta, "name", "metadata.", &o.name));
  FAULTLINE_RETURN_IF_ERROR(GetString(*meta, "uid", "metadata.", &o.uid));
  FAULTLINE_RETURN_IF_ERROR(GetString(*meta, "resourceVersion", "metadata.", &o.resource_version));
  if (o.name.empty()) return InvalidArgument("metadata.name is missing");
  const json* spec = Object(j, "spec", "", &st);
  FAULTLINE_RETURN_IF_ERROR(st);
  const json* status = Object(j, "status", "", &st);
  FAULTLINE_RETURN_IF_ERROR(st);
  auto ips = [&](const json* parent, const char* key, const char* item_key, const std::string& where) -> Status {
    if (!parent) return Status::Ok();
    const json* list = Field(*parent, key);
    if (!list) return Status::Ok();
    if (!list->is_array()) return InvalidArgument(where + key + " is not an array");
    for (const json& e : *list) {
      const json* ip = item_key ? (e.is_object() ? Field(e, item_key) : nullptr) : &e;
      if (!ip || !ip->is_string()) return InvalidArgument(where + key + "[] has no IP string");
      const std::string s = ip->get<std::string>();
      if (!s.empty() && s != "None" && std::find(o.ips.begin(), o.ips.end(), s) == o.ips.end()) o.ips.push_back(s);
    }
    return Status::Ok();
  };
  if (kind == "Pod") {
    if (spec) FAULTLINE_RETURN_IF_ERROR(GetString(*spec, "nodeName", "spec.", &o.node));
    if (status) {
      std::string ip;
      FAULTLINE_RETURN_IF_ERROR(GetString(*status, "podIP", "status.", &ip));
      if (!ip.empty()) o.ips.push_back(ip);
      FAULTLINE_RETURN_IF_ERROR(ips(status, "podIPs", "ip", "status."));
    }
    std::string owner_kind, owner_name;
    if (const json* owners = Field(*meta, "ownerReferences")) {
      if (!owners->is_array()) return InvalidArgument("metadata.ownerReferences is not an array");
      for (const json& r : *owners) {
        if (!r.is_object()) return InvalidArgument("metadata.ownerReferences[] is not an object");
        const json* controller = Field(r, "controller");
        if (!controller || !controller->is_boolean() || !controller->get<bool>()) continue;
        FAULTLINE_RETURN_IF_ERROR(GetString(r, "kind", "metadata.ownerReferences[].", &owner_kind));
        FAULTLINE_RETURN_IF_ERROR(GetString(r, "name", "metadata.ownerReferences[].", &owner_name));
      }
    }
    o.workload = WorkloadOfOwner(owner_kind, owner_name, o.name);
  } else if (spec) {
    std::string ip;
    FAULTLINE_RETURN_IF_ERROR(GetString(*spec, "clusterIP", "spec.", &ip));
    if (!ip.empty() && ip != "None") o.ips.push_back(ip);
    FAULTLINE_RETURN_IF_ERROR(ips(spec, "clusterIPs", nullptr, "spec."));
  }
  return o;
}

KubeWatch::KubeWatch(KubeConfig config, KubeWatchOptions options)
    : config_(std::move(config)), options_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

KubeWatch::~KubeWatch() {
  stop_ = true;
  cv_.notify_all();
  thread_.join();
}

void KubeWatch::Changed() {
  generation_.fetch_add(1, std::memory_order_relaxed);
  cv_.notify_all();
}

KubeWatch::Stats KubeWatch::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

bool KubeWatch::WaitFor(const std::function<bool(const Stats&)>& done, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return done(stats_); });
}

std::optional<KubeObject> KubeWatch::ByIp(std::string_view ip) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [k, o] : objects_) {
    if (std::find(o.ips.begin(), o.ips.end(), ip) != o.ips.end()) return o;
  }
  return std::nullopt;
}

std::optional<KubeObject> KubeWatch::ByUid(std::string_view uid) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [k, o] : objects_) {
    if (o.uid == uid) return o;
  }
  return std::nullopt;
}

std::map<std::string, KubeObject> KubeWatch::Objects() const {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_;
}

void KubeWatch::Put(KubeObject o) {
  const std::string key = o.ns + "/" + o.name;
  auto it = objects_.find(key);
  if (it == objects_.end() && objects_.size() >= options_.max_objects) {
    stats_.over_limit++;
    return;
  }
  objects_[key] = std::move(o);
}

namespace {

void Prepare(Request& r, const KubeConfig& c, const std::string& url) {
  curl_easy_setopt(r.curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(r.curl, CURLOPT_NOSIGNAL, 1L);
  if (!c.token.empty()) r.headers = curl_slist_append(r.headers, ("Authorization: Bearer " + c.token).c_str());
  r.headers = curl_slist_append(r.headers, "Accept: application/json");
  curl_easy_setopt(r.curl, CURLOPT_HTTPHEADER, r.headers);
  if (!c.ca_file.empty()) curl_easy_setopt(r.curl, CURLOPT_CAINFO, c.ca_file.c_str());
}

std::string Query(const KubeWatchOptions& o, const std::string& extra) {
  std::string q = o.selector;
  if (!extra.empty()) q += (q.empty() ? "" : "&") + extra;
  return q.empty() ? "" : "?" + q;
}

}  // namespace

Status KubeWatch::List() {
  std::map<std::string, KubeObject> fresh;
  std::string cont, version;
  uint64_t over = 0;
  do {
    Request r;
    if (!r.curl) return Internal("curl_easy_init failed");
    std::string extra = "limit=" + std::to_string(options_.page_size);
    if (!cont.empty()) {
      char* e = curl_easy_escape(r.curl, cont.c_str(), static_cast<int>(cont.size()));
      extra += "&continue=" + std::string(e);
      curl_free(e);
    }
    const std::string url = config_.server + options_.path + Query(options_, extra);
    Prepare(r, config_, url);
    std::string body;
    curl_easy_setopt(r.curl, CURLOPT_WRITEFUNCTION,
                     +[](char* d, size_t z, size_t n, void* u) -> size_t {
                       static_cast<std::string*>(u)->append(d, z * n);
                       return z * n;
                     });
    curl_easy_setopt(r.curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(r.curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
    curl_easy_setopt(r.curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.list_timeout.count()));
    const CURLcode rc = curl_easy_perform(r.curl);
    long code = 0;
    curl_easy_getinfo(r.curl, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK) return Unavailable("LIST " + url + ": " + curl_easy_strerror(rc));
    if (code == 410) return FailedPrecondition("LIST " + url + ": 410 Gone (the continue token expired)");
    if (code != 200) return Unavailable("LIST " + url + ": HTTP " + std::to_string(code));
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return InvalidArgument("LIST " + url + ": not a JSON object");
    const json* meta = Field(j, "metadata");
    const json* items = Field(j, "items");
    if (!meta || !meta->is_object()) return InvalidArgument("LIST " + url + ": no metadata");
    if (items && !items->is_array()) return InvalidArgument("LIST " + url + ": items is not an array");
    FAULTLINE_RETURN_IF_ERROR(GetString(*meta, "resourceVersion", "LIST metadata.", &version));
    cont.clear();
    FAULTLINE_RETURN_IF_ERROR(GetString(*meta, "continue", "LIST metadata.", &cont));
    if (items) {
      for (size_t i = 0; i < items->size(); ++i) {
        auto o = ParseKubeObject(options_.kind, (*items)[i].dump());
        if (!o.ok()) return InvalidArgument("LIST " + url + ": items[" + std::to_string(i) + "]: " + o.status().message());
        if (fresh.size() >= options_.max_objects) {
          over++;
          continue;
        }
        fresh[o->ns + "/" + o->name] = std::move(o).value();
      }
    }
  } while (!cont.empty() && !stop_);
  if (version.empty()) return InvalidArgument("LIST " + options_.path + ": no metadata.resourceVersion");
  {
    std::lock_guard<std::mutex> lock(mu_);
    objects_ = std::move(fresh);
    stats_.over_limit += over;
    stats_.resource_version = version;
    stats_.lists++;
  }
  Changed();
  return Status::Ok();
}

Status KubeWatch::ApplyEvent(std::string_view line) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("watch event: not a JSON object");
  std::string type;
  FAULTLINE_RETURN_IF_ERROR(GetString(j, "type", "watch event: ", &type));
  const json* object = Field(j, "object");
  if (!object || !object->is_object()) return InvalidArgument("watch event: no object");
  if (type == "ERROR") {
    long code = 0;
    if (const json* c = Field(*object, "code"); c && c->is_number_integer()) code = c->get<long>();
    std::string message;
    (void)GetString(*object, "message", "", &message);
    if (code == 410) return FailedPrecondition("watch: 410 Gone: " + message);
    return Unavailable("watch: ERROR " + std::to_string(code) + ": " + message);
  }
  if (type == "BOOKMARK") {
    std::string version;
    if (const json* meta = Field(*object, "metadata"); meta && meta->is_object())
      FAULTLINE_RETURN_IF_ERROR(GetString(*meta, "resourceVersion", "watch bookmark: metadata.", &version));
    if (version.empty()) return InvalidArgument("watch bookmark: no metadata.resourceVersion");
    std::lock_guard<std::mutex> lock(mu_);
    stats_.resource_version = version;
    stats_.bookmarks++;
  } else if (type == "ADDED" || type == "MODIFIED" || type == "DELETED") {
    auto o = ParseKubeObject(options_.kind, object->dump());
    if (!o.ok()) return InvalidArgument("watch " + type + ": " + o.status().message());
    std::lock_guard<std::mutex> lock(mu_);
    if (!o->resource_version.empty()) stats_.resource_version = o->resource_version;
    if (type == "DELETED") {
      objects_.erase(o->ns + "/" + o->name);
    } else {
      Put(std::move(o).value());
    }
    stats_.events++;
  } else {
    return InvalidArgument("watch event: unknown type '" + type + "'");
  }
  Changed();
  return Status::Ok();
}

Status KubeWatch::Watch() {
  Request r;
  if (!r.curl) return Internal("curl_easy_init failed");
  std::string version;
  {
    std::lock_guard<std::mutex> lock(mu_);
    version = stats_.resource_version;
    stats_.watches++;
  }
  Changed();
  const std::string url =
      config_.server + options_.path +
      Query(options_, "watch=1&allowWatchBookmarks=true&timeoutSeconds=" +
                          std::to_string(options_.watch_timeout_s) + "&resourceVersion=" + version);
  Prepare(r, config_, url);
  StreamState s;
  s.stop = &stop_;
  s.on_line = [this](std::string_view line) { return ApplyEvent(line); };
  curl_easy_setopt(r.curl, CURLOPT_WRITEFUNCTION, OnStreamData);
  curl_easy_setopt(r.curl, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(r.curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(r.curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(r.curl, CURLOPT_XFERINFODATA, &s);
  curl_easy_setopt(r.curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
  // A stalled watch (no byte, not even a bookmark, for longer than the server's own timeout)
  // is a dead one.
  curl_easy_setopt(r.curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(r.curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.watch_timeout_s + 30));
  const CURLcode rc = curl_easy_perform(r.curl);
  long code = 0;
  curl_easy_getinfo(r.curl, CURLINFO_RESPONSE_CODE, &code);
  if (!s.status.ok()) return s.status;
  if (code == 410) return FailedPrecondition("WATCH: 410 Gone");
  if (rc == CURLE_ABORTED_BY_CALLBACK && stop_) return Status::Ok();
  if (rc != CURLE_OK) return Unavailable("WATCH " + url + ": " + curl_easy_strerror(rc));
  if (code != 200) return Unavailable("WATCH " + url + ": HTTP " + std::to_string(code));
  if (!s.buffer.empty()) return Unavailable("WATCH " + url + ": the stream ended inside an event");
  return Status::Ok();  // the server ended the watch: resume
}

void KubeWatch::Run() {
  bool listed = false;
  std::chrono::milliseconds backoff = options_.backoff_min;
  LogRateLimiter limiter(std::chrono::seconds(30));
  while (!stop_) {
    const auto started = std::chrono::steady_clock::now();
    Status st = listed ? Watch() : List();
    if (stop_) break;
    // A watch the server ends at once, again and again, must not become a busy loop.
    if (st.ok() && listed && std::chrono::steady_clock::now() - started < std::chrono::seconds(1)) {
      st = Unavailable("the watch ended within a second of its start");
    }
    if (st.ok()) {
      backoff = options_.backoff_min;
      listed = true;
      continue;  // listed: watch; a watch that ended: resume from the last version
    }
    if (st.code() == StatusCode::kFailedPrecondition) {  // 410 Gone: list again, at once
      std::lock_guard<std::mutex> lock(mu_);
      stats_.gone++;
      listed = false;
      cv_.notify_all();
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.errors++;
    }
    Changed();
    uint64_t suppressed = 0;
    if (limiter.Allow(&suppressed)) {
      spdlog::warn("kubernetes {}: {}; retrying in {} ms{}", options_.path, st.message(), backoff.count(),
                   suppressed ? fmt::format(" ({} more suppressed)", suppressed) : "");
    }
    // A malformed answer or an unknown list state: start over from a list.
    if (st.code() == StatusCode::kInvalidArgument) listed = false;
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, backoff, [this] { return stop_.load(); });
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
}

}  // namespace faultline::agent
