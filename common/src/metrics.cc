#include "faultline/common/metrics.h"

#include <httplib.h>
#include <prometheus/text_serializer.h>

#include <thread>

#include "faultline/common/health.h"
#include "faultline/common/http_health.h"

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
  httplib::Server http;
  std::thread thread;
  int port = 0;
  ~Impl() {
    http.stop();
    if (thread.joinable()) thread.join();
  }
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& addr,
                                                            const MetricsRegistry& registry,
                                                            const Health* health) {
  const auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon + 1 == addr.size()) {
    return InvalidArgument("--metrics-addr '" + addr + "': expected HOST:PORT, e.g. 127.0.0.1:9464");
  }
  int port = 0;
  try {
    port = std::stoi(addr.substr(colon + 1));
  } catch (const std::exception&) {
    port = -1;
  }
  if (port < 0 || port > 65535) {
    return InvalidArgument("--metrics-addr '" + addr + "': the port must be a number 0..65535");
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->impl_ = std::make_unique<Impl>();
  httplib::Server& http = server->impl_->http;
  http.Get("/metrics", [&registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry.RenderText(), "text/plain; version=0.0.4");
  });
  if (health) ServeHealth(*health, &http);
  std::string host = addr.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const int bound = port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (bound < 0) return Unavailable("--metrics-addr '" + addr + "': cannot listen there");
  server->impl_->port = bound;
  server->impl_->thread = std::thread([&http] { http.listen_after_bind(); });
  return server;
}

void ServeHealth(const Health& health, httplib::Server* http) {
  http->Get("/healthz", [&health](const httplib::Request&, httplib::Response& res) {
    auto [status, body] = health.Liveness();
    res.status = status;
    res.set_content(body, "text/plain");
  });
  http->Get("/readyz", [&health](const httplib::Request&, httplib::Response& res) {
    auto [status, body] = health.Readiness();
    res.status = status;
    res.set_content(body, "text/plain");
  });
}

MetricsServer::~MetricsServer() = default;

int MetricsServer::port() const { return impl_->port; }

}  // namespace faultline
