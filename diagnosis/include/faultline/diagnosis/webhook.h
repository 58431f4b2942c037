// Webhooks: incidents delivered over HTTP the Standard Webhooks way (standardwebhooks.com):
//   webhook-id:        "<incident id>.<sequence>", the same for every attempt of one delivery
//   webhook-timestamp: Unix seconds of the attempt
//   webhook-signature: "v1," + base64(HMAC-SHA256(secret, id + "." + timestamp + "." + body))
// The secret is "whsec_" + base64 bytes (as Standard Webhooks issues them), or any other string
// used as raw bytes. Bodies: the native incident (schema/incident.schema.json), or an
// Alertmanager-compatible payload (version 4: status firing/resolved, labels, annotations,
// startsAt/endsAt, fingerprint) so existing receivers work unchanged.
//
// Retries: 2xx is delivered; 408, 429, 5xx, timeouts and connection errors are retried with
// exponential backoff and full jitter, honouring Retry-After (seconds); any other 4xx is refused
// for good (counted, not retried).
//
// Thread-safety: the free functions are pure; a WebhookClient is used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"
#include "faultline/diagnosis/incident.h"

namespace faultline::diagnosis {

enum class WebhookFormat : uint8_t { kNative, kAlertmanager };

struct WebhookOptions {
  // A name for /metrics and logs. Required, [a-z0-9_-]{1,64}.
  std::string name;
  // http:// or https:// URL. Required.
  std::string url;
  // Signing secret ("whsec_…" base64, or raw). Required.
  std::string secret;
  // Default: kNative.
  WebhookFormat format = WebhookFormat::kNative;
  // Per attempt. Default: 5000.
  int timeout_ms = 5000;
  // Backoff between attempts: from 500 ms, doubling, at most this. Default: 60000.
  int max_backoff_ms = 60000;
};

// Checks a configured endpoint. Errors: kInvalidArgument naming the field (`webhooks[i].url: …`).
Status ValidateWebhook(const WebhookOptions& o, const std::string& where);

// base64(HMAC-SHA256(key(secret), id.timestamp.body)), prefixed "v1,".
std::string WebhookSignature(std::string_view secret, std::string_view id, int64_t timestamp,
                             std::string_view body);

// The Alertmanager webhook payload (version 4) for one incident.
std::string AlertmanagerPayload(const Incident& incident);

enum class DeliveryOutcome : uint8_t { kDelivered, kRetry, kRefused };
// What an HTTP status means for a delivery (0: no answer at all: timeout, connection error).
DeliveryOutcome OutcomeOf(long http_status);
// The wait before attempt `attempt` (1 = the first retry): Retry-After when the receiver gave one
// (at most max_backoff), else full jitter over min(max_backoff, 500 ms · 2^(attempt-1)).
int64_t RetryDelayMs(int attempt, int64_t retry_after_s, int max_backoff_ms, std::mt19937_64* rng);

struct HttpAnswer {
  long status = 0;           // 0: no answer
  int64_t retry_after_s = -1;
  std::string error;         // when status is 0
};

// A libcurl client for one endpoint (connections reused between deliveries).
class WebhookClient {
 public:
  explicit WebhookClient(WebhookOptions options);
  ~WebhookClient();
  // One signed POST. `id` is the webhook-id; `now_s` the timestamp to sign.
  HttpAnswer Post(const std::string& id, int64_t now_s, const std::string& body);
  const WebhookOptions& options() const { return o_; }

 private:
  WebhookOptions o_;
  void* curl_ = nullptr;
};

}  // namespace faultline::diagnosis
