// The diagnosis service's configuration file (live_runtime.h: ParseDiagnosisConfig).
#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "faultline/common/config_section.h"
#include "faultline/common/yaml_load.h"
#include "faultline/detectors/plugin_loader.h"
#include "faultline/diagnosis/live_runtime.h"

namespace faultline::diagnosis {
namespace {

// One webhooks[i] entry.
Status ReadWebhook(const std::string& source, const YAML::Node& w, const std::string& where,
                   WebhookOptions* wo) {
  if (!w.IsMap()) return ConfigError(source, w, where + ": expected a mapping");
  ConfigSection fields(where + ".", "fields");
  std::string secret_env, format;
  fields.Text("name", &wo->name, "a value")
      .Text("url", &wo->url, "a value")
      .Text("secret", &wo->secret, "a value")
      .Custom("secret_env",
              [&](const YAML::Node& v, const std::string& field) -> Status {
                if (!v.IsScalar()) return InvalidArgument(field + ": expected a value");
                const char* s = std::getenv(v.Scalar().c_str());
                if (!s || !*s)
                  return InvalidArgument(field + ": the environment variable " + v.Scalar() +
                                         " is not set");
                wo->secret = s;
                return Status::Ok();
              })
      .Custom("format",
              [&](const YAML::Node& v, const std::string& field) -> Status {
                const std::string f = v.IsScalar() ? v.Scalar() : "";
                if (f == "native") {
                  wo->format = WebhookFormat::kNative;
                } else if (f == "alertmanager") {
                  wo->format = WebhookFormat::kAlertmanager;
                } else {
                  return InvalidArgument(field + ": '" + f + "': expected native or alertmanager");
                }
                return Status::Ok();
              })
      .Integer("timeout_ms", 0, 3600000, &wo->timeout_ms)
      .Integer("max_backoff_ms", 0, 3600000, &wo->max_backoff_ms);
  FAULTLINE_RETURN_IF_ERROR(fields.Read(source, w));
  if (Status s = ValidateWebhook(*wo, where); !s.ok()) return ConfigError(source, w, s.message());
  return Status::Ok();
}

}  // namespace

Status ParseDiagnosisConfig(const std::string& yaml, const std::string& source,
                            LiveRuntimeOptions* o) {
  YAML::Node root;
  FAULTLINE_RETURN_IF_ERROR(LoadYaml(yaml, source, &root));
  if (root.IsMap() && root["plugins"]) {
    // Plugins first, wherever they are in the file: the rules may name them.
    const YAML::Node p = root["plugins"];
    if (!p.IsSequence()) return ConfigError(source, p, "plugins: expected a list of .so paths");
    for (size_t i = 0; i < p.size(); ++i) {
      const std::string where = "plugins[" + std::to_string(i) + "]";
      if (!p[i].IsScalar()) return ConfigError(source, p[i], where + ": expected a path");
      if (Status s = detectors::RegisterDetectorPlugin(p[i].Scalar()); !s.ok())
        return ConfigError(source, p[i], where + ": " + s.message());
    }
  }
  LiveOptions& live = o->live;
  ConfigSection settings;
  settings.Integer("lookback_seconds", 30, 86400, &live.lookback_s)
      .Integer("idle_seconds", 5, 86400, &live.idle_s)
      .Integer("resolve_after_windows", 1, 10000, &live.resolve_after)
      .Integer("confirm_windows", 0, 100, &live.confirm_windows)
      .Integer("commit_interval_ms", 10, 60000, &o->commit_interval_ms)
      .TextList("entry_points", &live.entry_points, "a service name")
      .Custom("detectors",
              [&](const YAML::Node& v, const std::string&) -> Status {
                YAML::Emitter out;
                out << v;
                // Line numbers of the nested document are offset by where it starts here.
                auto c = detectors::ParseDetectorConfig(
                    out.c_str(),
                    source + " (detectors, from line " + std::to_string(v.Mark().line + 1) + ")");
                if (!c.ok()) return c.status();
                live.detectors = std::move(*c);
                return Status::Ok();
              })
      .Custom("plugins", [](const YAML::Node&, const std::string&) { return Status::Ok(); })
      .Text("trees", &o->trees_path, "a file or directory")
      .Text("incidents_topic", &o->incidents_topic, "a topic name")
      .Custom("webhooks", [&](const YAML::Node& v, const std::string& field) -> Status {
        if (!v.IsSequence()) return InvalidArgument(field + ": expected a list of endpoints");
        o->webhooks.clear();
        for (size_t i = 0; i < v.size(); ++i) {
          const std::string where = field + "[" + std::to_string(i) + "]";
          WebhookOptions wo;
          FAULTLINE_RETURN_IF_ERROR(ReadWebhook(source, v[i], where, &wo));
          for (const WebhookOptions& other : o->webhooks)
            if (other.name == wo.name)
              return ConfigError(source, v[i], where + ".name: '" + wo.name + "' is used twice");
          o->webhooks.push_back(std::move(wo));
        }
        return Status::Ok();
      });
  return settings.Read(source, root);
}

}  // namespace faultline::diagnosis
