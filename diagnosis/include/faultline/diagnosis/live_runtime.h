// `faultline diagnose --brokers …`: live diagnosis as a service. It reads every partition of
// the metrics topic (one instance owns the whole aggregated stream: it is orders of magnitude
// smaller than the event stream, and a diagnosis needs the whole graph), feeds LiveDiagnosis,
// and keeps in one RocksDB database (<state_dir>/diagnosis) the input offsets, the merged windows,
// the detectors' states, the incidents and an outbox of deliveries, all written in one batch per
// commit, so that a restart (after SIGKILL too) continues exactly where the last commit left off.
//
// Every change of an incident becomes one outbox entry per sink: the incident topic (key =
// incident id, value = the incident JSON, CloudEvents 1.0 attributes as ce_* headers; an
// idempotent producer) and each webhook (webhooks.h). An entry leaves the outbox with the first
// commit after its sink acknowledged it (diagnosis/src/diagnosis_store.h holds the key layout;
// sinks.h, one delivery stage per sink that retries with backoff). Delivery is therefore at least
// once, and every delivery carries a stable identity (incident id and sequence; the webhook-id
// "<id>.<sequence>") by which receivers drop the rare duplicate a crash between delivery and
// commit can cause. Deliveries to one sink are in outbox order, so every incident's updates
// arrive in sequence order.
//
// Thread-compatible: Run() on one thread; one thread per sink; the HTTP server reads a
// mutex-guarded snapshot.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "faultline/common/metrics.h"
#include "faultline/common/status.h"
#include "faultline/diagnosis/live.h"
#include "faultline/diagnosis/webhook.h"

namespace faultline::diagnosis {

struct LiveRuntimeOptions {
  // Required: HOST:PORT[,…].
  std::string brokers;
  // Default: "faultline.metrics".
  std::string metrics_topic = "faultline.metrics";
  // "" publishes no incidents to Kafka. Default: "faultline.incidents".
  std::string incidents_topic = "faultline.incidents";
  // Required.
  std::string state_dir;
  // How long to wait at start for the metrics topic to exist. Default: 60000.
  int64_t topic_wait_ms = 60000;
  // How often the state, offsets and outbox are committed. Default: 500.
  int64_t commit_interval_ms = 500;
  // HOST:PORT for /metrics, /status, /incidents, /incidents/<id>; "" for none. Default: "".
  std::string http_addr;
  std::vector<WebhookOptions> webhooks;
  LiveOptions live;
  // Fault trees (a file or directory); "" for the built-in ones. Default: "".
  std::string trees_path;
  // Called on the Run thread with every incident change, once it is committed. Default: none.
  std::function<void(const Incident&)> on_incident;
};

// Reads the diagnosis configuration (YAML) over `options`. Keys: lookback_seconds,
// idle_seconds, resolve_after_windows, entry_points: [service…], detectors: {rules: …, default:
// …} (detectors/config.h; metrics from the catalog), plugins: [path.so…] (detector plugins, then
// usable by their names in the rules), trees: PATH, incidents_topic, commit_interval_ms,
// webhooks: [{name, url, secret | secret_env, format: native|alertmanager, timeout_ms,
// max_backoff_ms}]. Errors: kInvalidArgument naming `source`, the line and the field.
Status ParseDiagnosisConfig(const std::string& yaml, const std::string& source,
                            LiveRuntimeOptions* options);

class LiveRuntime {
 public:
  // Errors: kInvalidArgument for options (naming the field), kUnavailable for Kafka or the state
  // directory, kInvalidArgument for a state that cannot be read back (naming the key).
  static Result<std::unique_ptr<LiveRuntime>> Create(LiveRuntimeOptions options,
                                                     MetricsRegistry* metrics);
  ~LiveRuntime();
  // Until `stop`: consume, judge, commit, deliver; then a last commit, and up to 5 s to deliver.
  Status Run(const std::atomic<bool>& stop);
  int http_port() const;

 private:
  LiveRuntime() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The incidents a diagnosis state directory holds (open first, then the latest resolved),
// read-only (works while the service runs). Errors: kNotFound when there is no state.
Result<std::vector<Incident>> ReadIncidents(const std::string& state_dir);

}  // namespace faultline::diagnosis
