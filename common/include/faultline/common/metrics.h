// Self-metrics for every faultline process, exposed in Prometheus text format.
//
// A MetricsRegistry owns counter and gauge families; components ask it for a counter by name and
// labels once (at construction) and then increment it on the hot path (an atomic add). A
// MetricsServer serves the registry on /metrics at a host:port (and a process's Health on
// /healthz and /readyz). Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/labels.h>
#include <prometheus/registry.h>

#include "faultline/common/status.h"

namespace faultline {

class MetricsRegistry {
 public:
  MetricsRegistry();
  // Returns the counter `name{labels}`, creating its family (with `help`) on first use. The
  // reference stays valid for the registry's lifetime.
  prometheus::Counter& Counter(const std::string& name, const std::string& help,
                               const prometheus::Labels& labels = {});
  prometheus::Gauge& Gauge(const std::string& name, const std::string& help,
                           const prometheus::Labels& labels = {});
  // The whole registry in Prometheus text exposition format.
  std::string RenderText() const;
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::mutex mu_;
  std::map<std::string, prometheus::Family<prometheus::Counter>*> counters_;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> gauges_;
};

class Health;  // health.h

class MetricsServer {
 public:
  // Serves `registry` on http://<addr>/metrics and, when `health` is given (it must outlive the
  // server), its liveness on /healthz and readiness on /readyz. `addr` is "host:port"; errors
  // name the flag value.
  static Result<std::unique_ptr<MetricsServer>> Start(const std::string& addr,
                                                      const MetricsRegistry& registry,
                                                      const Health* health = nullptr);
  ~MetricsServer();
  // The port actually bound (useful with port 0).
  int port() const;

 private:
  MetricsServer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace faultline
