// The diagnosis service's parts that need no broker: the webhook helpers (signatures, outcomes
// and backoff, payloads, validation) and the configuration parser.
#include "faultline/diagnosis/live_runtime.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "faultline/diagnosis/webhook.h"

namespace faultline::diagnosis {
namespace {

constexpr int64_t kT0 = 1'800'000'000;

// Webhooks.

TEST(Webhook, SignatureMatchesTheStandardWebhooksVector) {
  // The example of the Standard Webhooks specification and its reference libraries.
  EXPECT_EQ(WebhookSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                             "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  // A secret without the prefix is its raw bytes; any change of id, time or body changes it.
  const std::string s = WebhookSignature("secret", "a.1", 10, "{}");
  EXPECT_NE(s, WebhookSignature("secret", "a.2", 10, "{}"));
  EXPECT_NE(s, WebhookSignature("secret", "a.1", 11, "{}"));
  EXPECT_NE(s, WebhookSignature("secret", "a.1", 10, "{ }"));
  EXPECT_EQ(s.rfind("v1,", 0), 0u);
}

TEST(Webhook, OutcomesAndBackoff) {
  EXPECT_EQ(OutcomeOf(200), DeliveryOutcome::kDelivered);
  EXPECT_EQ(OutcomeOf(204), DeliveryOutcome::kDelivered);
  EXPECT_EQ(OutcomeOf(0), DeliveryOutcome::kRetry);
  EXPECT_EQ(OutcomeOf(408), DeliveryOutcome::kRetry);
  EXPECT_EQ(OutcomeOf(429), DeliveryOutcome::kRetry);
  EXPECT_EQ(OutcomeOf(500), DeliveryOutcome::kRetry);
  EXPECT_EQ(OutcomeOf(503), DeliveryOutcome::kRetry);
  EXPECT_EQ(OutcomeOf(400), DeliveryOutcome::kRefused);
  EXPECT_EQ(OutcomeOf(404), DeliveryOutcome::kRefused);
  EXPECT_EQ(OutcomeOf(301), DeliveryOutcome::kRefused);
  std::mt19937_64 rng(1);
  EXPECT_EQ(RetryDelayMs(3, 7, 60000, &rng), 7000);
  EXPECT_EQ(RetryDelayMs(3, 7, 2000, &rng), 2000);
  for (int attempt = 1; attempt <= 30; ++attempt) {
    const int64_t cap = std::min<int64_t>(60000, int64_t{500} << std::min(attempt - 1, 20));
    int64_t hi = 0;
    for (int i = 0; i < 200; ++i) {
      const int64_t d = RetryDelayMs(attempt, -1, 60000, &rng);
      ASSERT_GE(d, 0);
      ASSERT_LE(d, cap);
      hi = std::max(hi, d);
    }
    EXPECT_GT(hi, cap / 2) << "full jitter spans the range, attempt " << attempt;
  }
}

Incident Sample() {
  Incident i;
  i.id = "fl-0123456789abcdef";
  i.dedup_key = "service:frontend|service:db";
  i.fingerprint = StableHash(i.dedup_key);
  i.opened_at_s = kT0;
  i.updated_at_s = kT0;
  i.title = "Slow code at service db";
  i.labels = {{"alertname", "FaultlineIncident"}, {"severity", "error"}};
  i.annotations = {{"summary", "db is slow"}};
  return i;
}

TEST(Webhook, AlertmanagerPayloadFiresAndResolves) {
  Incident i = Sample();
  auto j = nlohmann::json::parse(AlertmanagerPayload(i));
  EXPECT_EQ(j["version"], "4");
  EXPECT_EQ(j["status"], "firing");
  EXPECT_EQ(j["groupKey"], i.dedup_key);
  ASSERT_EQ(j["alerts"].size(), 1u);
  EXPECT_EQ(j["alerts"][0]["status"], "firing");
  EXPECT_EQ(j["alerts"][0]["startsAt"], Rfc3339(kT0));
  EXPECT_EQ(j["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
  EXPECT_EQ(j["alerts"][0]["fingerprint"], i.fingerprint);
  EXPECT_EQ(j["alerts"][0]["labels"]["severity"], "error");
  EXPECT_EQ(j["commonAnnotations"]["summary"], "db is slow");
  i.status = IncidentStatus::kResolved;
  i.resolved_at_s = kT0 + 60;
  j = nlohmann::json::parse(AlertmanagerPayload(i));
  EXPECT_EQ(j["status"], "resolved");
  EXPECT_EQ(j["alerts"][0]["endsAt"], Rfc3339(kT0 + 60));
}

TEST(Webhook, ValidationNamesTheField) {
  WebhookOptions o{.name = "ops", .url = "http://127.0.0.1:9/hook", .secret = "s"};
  EXPECT_TRUE(ValidateWebhook(o, "webhooks[0]").ok());
  auto err = [&](WebhookOptions bad) { return ValidateWebhook(bad, "webhooks[0]").message(); };
  WebhookOptions b = o;
  b.name = "Ops!";
  EXPECT_EQ(err(b), "webhooks[0].name: 'Ops!': expected 1-64 of [a-z0-9_-]");
  b = o, b.url = "ftp://x/y";
  EXPECT_EQ(err(b), "webhooks[0].url: 'ftp://x/y': expected an http or https URL");
  b = o, b.url = "http://exa mple/";
  EXPECT_EQ(err(b).rfind("webhooks[0].url: 'http://exa mple/': ", 0), 0u) << err(b);
  b = o, b.secret = "";
  EXPECT_EQ(err(b), "webhooks[0].secret: required (Standard Webhooks signs every delivery)");
  b = o, b.timeout_ms = 5;
  EXPECT_EQ(err(b), "webhooks[0].timeout_ms: 5: expected 100..120000");
}

TEST(DiagnosisConfig, ReadsEverySettingAndNamesBadOnes) {
  LiveRuntimeOptions o;
  ASSERT_TRUE(ParseDiagnosisConfig(R"(lookback_seconds: 300
idle_seconds: 60
resolve_after_windows: 5
confirm_windows: 2
entry_points: [gateway]
webhooks:
  - {name: ops, url: "http://127.0.0.1:9/h", secret: s, format: alertmanager}
detectors:
  rules:
    - match: {kind: service, metric: latency_p99_ms}
      detector: threshold
      params: {upper: 100}
)",
                                   "d.yaml", &o)
                  .ok());
  EXPECT_EQ(o.live.lookback_s, 300);
  EXPECT_EQ(o.live.idle_s, 60);
  EXPECT_EQ(o.live.resolve_after, 5);
  EXPECT_EQ(o.live.confirm_windows, 2);
  EXPECT_EQ(o.live.entry_points, std::vector<std::string>{"gateway"});
  ASSERT_EQ(o.webhooks.size(), 1u);
  EXPECT_EQ(o.webhooks[0].format, WebhookFormat::kAlertmanager);
  EXPECT_EQ(o.live.detectors.Match(EntityKind::kService, "x", Metric::kLatencyP99Ms, {})->detector,
            "threshold");
  auto err = [](const std::string& yaml) {
    LiveRuntimeOptions o;
    return ParseDiagnosisConfig(yaml, "d.yaml", &o).message();
  };
  EXPECT_EQ(err("confirm_windows: -1\n"),
            "d.yaml:1: confirm_windows: expected an integer in 0..100, got '-1'");
  EXPECT_EQ(err("resolve_after_windows: 0\n"),
            "d.yaml:1: resolve_after_windows: expected an integer in 1..10000, got '0'");
  EXPECT_EQ(err("webhooks:\n  - {name: ops, url: 'ftp://x', secret: s}\n"),
            "d.yaml:2: webhooks[0].url: 'ftp://x': expected an http or https URL");
  const std::string unknown_metric =
      err("detectors:\n  rules:\n    - match: {metric: latency_p42}\n      detector: mad\n");
  EXPECT_NE(unknown_metric.find("latency_p42"), std::string::npos) << unknown_metric;
  EXPECT_EQ(unknown_metric.rfind("d.yaml (detectors, from line 2):", 0), 0u) << unknown_metric;
  const std::string unknown_detector = err("detectors:\n  rules:\n    - detector: nope\n");
  EXPECT_NE(unknown_detector.find("no detector named 'nope'"), std::string::npos)
      << unknown_detector;
  EXPECT_EQ(err("wat: 1\n").rfind("d.yaml:1: ", 0), 0u) << err("wat: 1\n");
  EXPECT_EQ(err("plugins: [/nonexistent/x.so]\n").rfind("d.yaml:1: plugins[0]: ", 0), 0u)
      << err("plugins: [/nonexistent/x.so]\n");
}

}  // namespace
}  // namespace faultline::diagnosis
