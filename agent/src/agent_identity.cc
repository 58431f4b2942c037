// Who an event is about: container metadata from the runtimes and the Kubernetes API, and the
// Services that name a call's callee (agent_impl.h).
#include "agent_impl.h"

#include <arpa/inet.h>

namespace faultline::agent {

// A Service's ClusterIP names the callee of a call to it.
void Agent::Impl::NameRemote(v1::Connection* c) {
  if (service_names.empty()) return;
  auto it = service_names.find(c->remote().addr());
  if (it != service_names.end()) c->mutable_remote()->set_name(it->second);
}

void Agent::Impl::ReportKube() {
  KubeWatch* watches[2] = {kube_pods.get(), kube_services.get()};
  const char* names[2] = {"pods", "services"};
  for (int i = 0; i < 2; ++i) {
    if (!watches[i]) continue;
    const KubeWatch::Stats s = watches[i]->stats();
    metrics->Gauge("faultline_agent_kube_objects", "Kubernetes objects the agent's watches hold",
                   {{"resource", names[i]}})
        .Set(static_cast<double>(watches[i]->Objects().size()));
    auto add = [&](const char* what, uint64_t now, uint64_t before) {
      metrics->Counter("faultline_agent_kube_watch_total",
                       "Kubernetes list/watch outcomes: lists, events, errors (backed off), gone "
                       "(410: listed again), over_limit (objects not kept)",
                       {{"resource", names[i]}, {"what", what}})
          .Increment(static_cast<double>(now - before));
    };
    const KubeWatch::Stats& b = kube_reported[i].last;
    add("lists", s.lists, b.lists);
    add("events", s.events, b.events);
    add("errors", s.errors, b.errors);
    add("gone", s.gone, b.gone);
    add("over_limit", s.over_limit, b.over_limit);
    kube_reported[i].last = s;
  }
}

void Agent::Impl::RefreshServiceNames() {
  if (!kube_services || kube_services->generation() == service_generation) return;
  service_generation = kube_services->generation();
  service_names.clear();
  for (const auto& [key, svc] : kube_services->Objects()) {
    for (const std::string& ip : svc.ips) {
      uint8_t b[16];
      if (inet_pton(AF_INET, ip.c_str(), b) == 1) {
        service_names[std::string(reinterpret_cast<char*>(b), 4)] = ValidUtf8(key);
      } else if (inet_pton(AF_INET6, ip.c_str(), b) == 1) {
        service_names[std::string(reinterpret_cast<char*>(b), 16)] = ValidUtf8(key);
      }
    }
  }
}

/* static */ void Agent::Impl::CopyMeta(const v1::ContainerMeta& src, v1::ContainerMeta* out) {
  const v1::ContainerMeta* m = &src;
  out->set_name(ValidUtf8(m->name()));
  out->set_image(ValidUtf8(m->image()));
  out->set_pod_namespace(ValidUtf8(m->pod_namespace()));
  out->set_pod_name(ValidUtf8(m->pod_name()));
  out->set_container_name(ValidUtf8(m->container_name()));
  out->set_pod_uid(ValidUtf8(m->pod_uid()));
  out->set_workload(ValidUtf8(m->workload()));
}

void Agent::Impl::ReportContainerMeta() {
  const auto& s = container_meta.stats();
  meta_resolved->Increment(static_cast<double>(s.resolved - meta_reported.resolved));
  meta_unknown->Increment(static_cast<double>(s.unknown - meta_reported.unknown));
  meta_errors->Increment(static_cast<double>(s.socket_errors - meta_reported.socket_errors));
  meta_evicted->Increment(static_cast<double>(s.evictions - meta_reported.evictions));
  meta_reported = s;
}

}  // namespace faultline::agent
