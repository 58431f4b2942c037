#include "faultline/diagnosis/webhook.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <nlohmann/json.hpp>

namespace faultline::diagnosis {
namespace {

std::string Base64(const unsigned char* data, size_t n) {
  std::string out(4 * ((n + 2) / 3), '\0');
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

std::string KeyOf(std::string_view secret) {
  if (secret.rfind("whsec_", 0) != 0) return std::string(secret);
  const std::string_view b64 = secret.substr(6);
  std::string out(3 * (b64.size() / 4) + 3, '\0');
  const int len = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()),
                                  static_cast<int>(b64.size()));
  if (len < 0) return std::string(secret);  // not base64: use it as it is
  size_t n = static_cast<size_t>(len);
  // EVP_DecodeBlock counts the padding as zero bytes.
  for (size_t i = b64.size(); i > 0 && b64[i - 1] == '='; --i) --n;
  out.resize(n);
  return out;
}

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

size_t Header(char* data, size_t size, size_t n, void* user) {
  std::string line(data, size * n);
  std::string lower = line;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower.rfind("retry-after:", 0) == 0) {
    const long long v = std::strtoll(line.c_str() + 12, nullptr, 10);
    if (v >= 0) *static_cast<int64_t*>(user) = v;
  }
  return size * n;
}

std::once_flag g_curl_init;

}  // namespace

Status ValidateWebhook(const WebhookOptions& o, const std::string& where) {
  if (o.name.empty() || o.name.size() > 64 ||
      !std::all_of(o.name.begin(), o.name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
      }))
    return InvalidArgument(where + ".name: '" + o.name + "': expected 1-64 of [a-z0-9_-]");
  CURLU* u = curl_url();
  const CURLUcode rc = curl_url_set(u, CURLUPART_URL, o.url.c_str(), 0);
  char* scheme = nullptr;
  if (rc == CURLUE_OK) curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  const std::string s = scheme ? scheme : "";
  curl_free(scheme);
  curl_url_cleanup(u);
  if (rc != CURLUE_OK)
    return InvalidArgument(where + ".url: '" + o.url + "': " + curl_url_strerror(rc));
  if (s != "http" && s != "https")
    return InvalidArgument(where + ".url: '" + o.url + "': expected an http or https URL");
  if (o.secret.empty()) return InvalidArgument(where + ".secret: required (Standard Webhooks signs every delivery)");
  if (o.timeout_ms < 100 || o.timeout_ms > 120000)
    return InvalidArgument(where + ".timeout_ms: " + std::to_string(o.timeout_ms) + ": expected 100..120000");
  if (o.max_backoff_ms < 500 || o.max_backoff_ms > 3600000)
    return InvalidArgument(where + ".max_backoff_ms: " + std::to_string(o.max_backoff_ms) +
                           ": expected 500..3600000");
  return Status::Ok();
}

std::string WebhookSignature(std::string_view secret, std::string_view id, int64_t timestamp,
                             std::string_view body) {
  const std::string key = KeyOf(secret);
  std::string content;
  content.reserve(id.size() + body.size() + 24);
  content.append(id).append(".").append(std::to_string(timestamp)).append(".").append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &len);
  return "v1," + Base64(mac, len);
}

std::string AlertmanagerPayload(const Incident& i) {
  const bool resolved = i.status == IncidentStatus::kResolved;
  nlohmann::ordered_json alert = {
      {"status", resolved ? "resolved" : "firing"},
      {"labels", i.labels},
      {"annotations", i.annotations},
      {"startsAt", Rfc3339(i.opened_at_s)},
      {"endsAt", resolved && i.resolved_at_s ? Rfc3339(*i.resolved_at_s) : "0001-01-01T00:00:00Z"},
      {"generatorURL", ""},
      {"fingerprint", i.fingerprint}};
  nlohmann::ordered_json j = {{"version", "4"},
                              {"groupKey", i.dedup_key},
                              {"truncatedAlerts", 0},
                              {"status", resolved ? "resolved" : "firing"},
                              {"receiver", "faultline"},
                              {"groupLabels", {{"alertname", "FaultlineIncident"}}},
                              {"commonLabels", i.labels},
                              {"commonAnnotations", i.annotations},
                              {"externalURL", ""},
                              {"alerts", nlohmann::ordered_json::array({alert})}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

DeliveryOutcome OutcomeOf(long status) {
  if (status >= 200 && status < 300) return DeliveryOutcome::kDelivered;
  if (status == 0 || status == 408 || status == 429 || status >= 500) return DeliveryOutcome::kRetry;
  return DeliveryOutcome::kRefused;
}

int64_t RetryDelayMs(int attempt, int64_t retry_after_s, int max_backoff_ms, std::mt19937_64* rng) {
  if (retry_after_s >= 0) return std::min<int64_t>(retry_after_s * 1000, max_backoff_ms);
  const int64_t cap = std::min<int64_t>(max_backoff_ms, int64_t{500} << std::min(attempt - 1, 20));
  std::uniform_int_distribution<int64_t> jitter(0, cap);
  return jitter(*rng);
}

WebhookClient::WebhookClient(WebhookOptions options) : o_(std::move(options)) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_ = curl_easy_init();
}

WebhookClient::~WebhookClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpAnswer WebhookClient::Post(const std::string& id, int64_t now_s, const std::string& body) {
  HttpAnswer a;
  CURL* c = static_cast<CURL*>(curl_);
  if (!c) {
    a.error = "libcurl could not be initialised";
    return a;
  }
  curl_easy_reset(c);
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, ("webhook-id: " + id).c_str());
  headers = curl_slist_append(headers, ("webhook-timestamp: " + std::to_string(now_s)).c_str());
  headers = curl_slist_append(
      headers, ("webhook-signature: " + WebhookSignature(o_.secret, id, now_s, body)).c_str());
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(c, CURLOPT_URL, o_.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(o_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "faultline");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Discard);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, Header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &a.retry_after_s);
  const CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
  } else {
    a.error = curl_easy_strerror(rc);
  }
  curl_slist_free_all(headers);
  return a;
}

}  // namespace faultline::diagnosis
