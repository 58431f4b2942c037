#include "faultline/common/metrics.h"

#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>

namespace faultline {

MetricsRegistry::MetricsRegistry() : registry_(std::make_shared<prometheus::Registry>()) {}

prometheus::Counter& MetricsRegistry::Counter(const std::string& name, const std::string& help,
                                              const prometheus::Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counters_.find(name);
  if (it == counters_.end()) {
    auto& family = prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
    it = counters_.emplace(name, &family).first;
  }
  return it->second->Add(labels);
}

prometheus::Gauge& MetricsRegistry::Gauge(const std::string& name, const std::string& help,
                                          const prometheus::Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = gauges_.find(name);
  if (it == gauges_.end()) {
    auto& family = prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
    it = gauges_.emplace(name, &family).first;
  }
  return it->second->Add(labels);
}

std::string MetricsRegistry::RenderText() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

struct MetricsServer::Impl {
  std::unique_ptr<prometheus::Exposer> exposer;
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& addr,
                                                            const MetricsRegistry& registry) {
  const auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon + 1 == addr.size()) {
    return InvalidArgument("--metrics-addr '" + addr + "': expected HOST:PORT, e.g. 127.0.0.1:9464");
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->impl_ = std::make_unique<Impl>();
  try {
    server->impl_->exposer = std::make_unique<prometheus::Exposer>(addr, 1);
  } catch (const std::exception& e) {
    return Unavailable("--metrics-addr '" + addr + "': cannot listen: " + e.what());
  }
  server->impl_->exposer->RegisterCollectable(registry.registry());
  return server;
}

MetricsServer::~MetricsServer() = default;

int MetricsServer::port() const {
  auto ports = impl_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace faultline
