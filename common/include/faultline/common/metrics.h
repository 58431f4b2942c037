// Self-metrics for every faultline process, exposed in Prometheus text format.
//
// A MetricsRegistry owns counter and gauge families; components ask it for a counter by name and
// labels once (at construction) and then increment it on the hot path (an atomic add).
// HttpServer (http_server.h) serves it on /metrics. Thread-safe.
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

}  // namespace faultline
