#include "faultline/model/identity.h"

#include <arpa/inet.h>

#include <algorithm>

namespace faultline::model {

bool IsLoopbackAddress(std::string_view address) {
  // "[v6]:port" or "[v6]", a bare v6 address (two colons or more), else "v4[:port]".
  std::string_view host = address;
  if (!host.empty() && host[0] == '[') {
    host = host.substr(1, host.find(']') == std::string_view::npos ? host.npos : host.find(']') - 1);
    return host == "::1";
  }
  if (std::count(host.begin(), host.end(), ':') >= 2) return host == "::1";
  return host.rfind("127.", 0) == 0;
}

std::string ListenerKey(std::string_view address, std::string_view machine) {
  return IsLoopbackAddress(address) ? std::string(machine) + "|" + std::string(address)
                                    : std::string(address);
}

bool IsAddressHost(std::string_view caller) {
  if (!caller.empty() && caller.front() == '[') return true;
  const std::string s(caller);
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string_view HostOf(std::string_view address) {
  if (!address.empty() && address[0] == '[') {
    const size_t end = address.find(']');
    return end == std::string_view::npos ? address : address.substr(0, end + 1);
  }
  const size_t colon = address.rfind(':');
  return colon == std::string_view::npos ? address : address.substr(0, colon);
}

std::string ExternalName(std::string_view address) {
  const size_t colon = address.rfind(':');
  const size_t bracket = address.rfind(']');
  if (colon == std::string_view::npos || (bracket != std::string_view::npos && colon < bracket) ||
      (bracket == std::string_view::npos && std::count(address.begin(), address.end(), ':') >= 2)) {
    return std::string(address);  // no port
  }
  int port = 0;
  for (char c : address.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return std::string(address);
    port = port * 10 + (c - '0');
  }
  return port >= kFirstEphemeralPort ? std::string(address.substr(0, colon)) : std::string(address);
}

std::string StoredWindow::CalleeEntity() const {
  return callee_service.empty() ? ExternalName(key.Dim(dim::kCallee)) : callee_service;
}

void Identity::Observe(const SeriesKey& key, int64_t start_s) {
  if (key.kind != EntityKind::kListener) return;
  const std::string_view address = key.Dim(dim::kAddress), machine = key.Dim(dim::kMachine);
  hosts_.emplace(HostOf(address));
  Binding& b = listeners_[ListenerKey(address, machine)];
  if (start_s < b.start_s) return;
  b.start_s = start_s;
  b.service = std::string(key.Dim(dim::kService));
  b.machine = std::string(machine);
}

const Identity::Binding* Identity::Find(std::string_view address,
                                        std::string_view machine) const {
  auto it = listeners_.find(ListenerKey(address, machine));
  return it == listeners_.end() ? nullptr : &it->second;
}

std::string Identity::CalleeService(const SeriesKey& edge) const {
  const std::string_view callee = edge.Dim(dim::kCallee);
  if (edge.Dim(dim::kSide) == dim::kServerSide || IsNamedCallee(callee)) return std::string(callee);
  const Binding* b = Find(callee, edge.Dim(dim::kMachine));
  return b ? b->service : std::string();
}

void Identity::Resolve(StoredWindow* w) const {
  if (w->key.kind == EntityKind::kEdge) w->callee_service = CalleeService(w->key);
}

std::string_view Identity::CalleeMachine(const SeriesKey& edge) const {
  const Binding* b = Find(edge.Dim(dim::kCallee), edge.Dim(dim::kMachine));
  return b ? std::string_view(b->machine) : std::string_view();
}

bool Identity::IsExternalCaller(const SeriesKey& server_edge) const {
  const std::string_view caller = server_edge.Dim(dim::kCaller);
  return IsAddressHost(caller) && !hosts_.count(caller) && !IsLoopbackAddress(caller);
}

std::optional<EntityRef> SeriesOf(const StoredWindow& w) {
  switch (w.key.kind) {
    case EntityKind::kService:
      return EntityRef{EntityKind::kService, std::string(w.key.Dim(dim::kService))};
    case EntityKind::kEdge:
      if (w.key.Dim(dim::kSide) == dim::kServerSide && IsAddressHost(w.key.Dim(dim::kCaller)))
        return std::nullopt;
      return EntityRef{EntityKind::kEdge,
                       std::string(w.key.Dim(dim::kCaller)) + "->" + w.CalleeEntity()};
    case EntityKind::kMachine:
      return EntityRef{EntityKind::kMachine, std::string(w.key.Dim(dim::kMachine))};
    case EntityKind::kContainer:
      return EntityRef{EntityKind::kContainer, std::string(w.key.Dim(dim::kContainer))};
    default:
      return std::nullopt;
  }
}

std::map<std::string, std::string> SeriesLabels(const StoredWindow& w, const EntityRef& series) {
  switch (series.kind) {
    case EntityKind::kService:
      return {{std::string(dim::kService), series.name}};
    case EntityKind::kEdge:
      return {{std::string(dim::kCaller), std::string(w.key.Dim(dim::kCaller))},
              {std::string(dim::kCallee), w.CalleeEntity()}};
    case EntityKind::kMachine:
      return {{std::string(dim::kMachine), series.name}};
    case EntityKind::kContainer:
      return {{std::string(dim::kContainer), series.name},
              {std::string(dim::kMachine), std::string(w.key.Dim(dim::kMachine))}};
    default:
      return {};
  }
}

}  // namespace faultline::model
