#include <chrono>
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "faultline/common/catalog.h"
#include "faultline/detectors/detector.h"
#include "faultline/detectors/nab_scorer.h"
#include "faultline/detectors/plugin_loader.h"
#include <fstream>
#include <sstream>

namespace faultline::cli {
namespace {

struct NabFlags {
  std::string nab_dir;  // required: no NAB data ships with faultline
  std::string detector;
  std::string results_dir;  // default: <nab_dir>/results/<detector>
  std::string run;          // a registered detector to run on the data instead
  std::vector<std::string> params;
};

Result<detectors::Params> ParseParams(const std::vector<std::string>& flags) {
  detectors::Params out;
  for (const auto& f : flags) {
    const auto eq = f.find('=');
    if (eq == std::string::npos || eq == 0) return InvalidArgument("--param '" + f + "': expected NAME=VALUE");
    out[f.substr(0, eq)] = f.substr(eq + 1);
  }
  return out;
}

// Runs a registered detector over every NAB series; fills scores; reports cost per point and
// state size.
Status RunOnNab(const std::string& name, const detectors::Params& params, std::vector<detectors::NabSeries>* corpus) {
  uint64_t points = 0, ns = 0;
  size_t state = 0;
  for (auto& s : *corpus) {
    FAULTLINE_ASSIGN_OR_RETURN(auto det, detectors::DetectorRegistry::Global().Create(name, params));
    s.scores.resize(s.values.size());
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < s.values.size(); ++i) s.scores[i] = det->Observe(s.timestamps[i], s.values[i]).score;
    ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    points += s.values.size();
    state = std::max(state, det->SaveState().size());
  }
  std::printf("detector=%s points=%llu ns_per_point=%.1f state_bytes=%zu\n", name.c_str(),
              static_cast<unsigned long long>(points), static_cast<double>(ns) / points, state);
  return Status::Ok();
}

int RunNab(const NabFlags& f) {
  if (f.run.empty() == f.detector.empty()) {
    std::cerr << "faultline detectors nab: give either --detector (score stored results) or --run (run a detector)\n";
    return 2;
  }
  const std::string results = f.results_dir.empty() ? f.nab_dir + "/results/" + f.detector : f.results_dir;
  auto profiles = detectors::LoadNabProfiles(f.nab_dir + "/config/profiles.json");
  if (!profiles.ok()) {
    std::cerr << "faultline detectors nab: " << profiles.status().message() << "\n";
    return 2;
  }
  auto corpus = f.run.empty() ? detectors::LoadNabResults(results, f.detector, f.nab_dir + "/labels/combined_windows.json")
                              : detectors::LoadNabData(f.nab_dir);
  if (!corpus.ok()) {
    std::cerr << "faultline detectors nab: " << corpus.status().message() << "\n";
    return 2;
  }
  if (!f.run.empty()) {
    auto params = ParseParams(f.params);
    Status s = params.ok() ? RunOnNab(f.run, *params, &*corpus) : params.status();
    if (!s.ok()) {
      std::cerr << "faultline detectors nab: " << s.message() << "\n";
      return 2;
    }
  }
  std::printf("%-20s %10s %10s %8s %8s %8s\n", "profile", "score", "threshold", "raw", "tp", "fp");
  for (const auto& p : *profiles) {
    auto s = detectors::ScoreNabCorpus(*corpus, p);
    if (!s.ok()) {
      std::cerr << "faultline detectors nab: " << s.status().message() << "\n";
      return 2;
    }
    std::printf("%-20s %10.2f %10.4f %8.3f %8lld %8lld\n", p.name.c_str(), s->normalized, s->threshold, s->raw,
                static_cast<long long>(s->tp), static_cast<long long>(s->fp));
  }
  return 0;
}

struct TestFlags {
  std::string plugin;    // detectors test: a plugin .so
  std::string detector;  // detectors run: a registered detector
  std::string data;
  std::vector<std::string> params;
};

int RunPluginTest(const TestFlags& f) {
  auto fail = [](const Status& s) {
    std::cerr << "faultline detectors: " << s.message() << "\n";
    return 2;
  };
  auto params = ParseParams(f.params);
  if (!params.ok()) return fail(params.status());
  std::unique_ptr<detectors::DetectorPlugin> plugin;
  std::unique_ptr<detectors::Detector> det;
  detectors::PluginDetector* plugin_det = nullptr;
  std::string name = f.detector;
  if (!f.plugin.empty()) {
    auto loaded = detectors::DetectorPlugin::Load(f.plugin);
    if (!loaded.ok()) return fail(loaded.status());
    plugin = std::move(loaded).value();
    auto created = plugin->Create(*params);
    if (!created.ok()) return fail(created.status());
    plugin_det = created->get();
    det = std::move(created).value();
    name = plugin->name();
  } else {
    auto created = detectors::DetectorRegistry::Global().Create(f.detector, *params);
    if (!created.ok()) return fail(created.status());
    det = std::move(created).value();
  }
  std::vector<int64_t> times;
  std::vector<double> values;
  if (Status s = detectors::ReadSeriesCsv(f.data, "value", &times, &values); !s.ok()) return fail(s);
  static const char* kDirections[] = {"none", "up", "down"};
  std::printf("timestamp,value,score,anomalous,direction,expected\n");
  uint64_t anomalies = 0, ns = 0;
  long first = -1;
  for (size_t i = 0; i < times.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const detectors::Verdict v = det->Observe(times[i], values[i]);
    ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    if (v.anomalous && first < 0) first = static_cast<long>(i);
    anomalies += v.anomalous;
    std::printf("%lld,%g,%.6f,%d,%s,%g\n", static_cast<long long>(times[i]), values[i], v.score, v.anomalous ? 1 : 0,
                kDirections[static_cast<int>(v.direction)], v.expected);
  }
  const uint64_t garbage = plugin_det ? plugin_det->garbage() : 0;
  std::printf("%s=%s points=%zu anomalies=%llu first_anomaly_index=%ld garbage=%llu ns_per_point=%.1f state_bytes=%zu\n",
              plugin ? "plugin" : "detector", name.c_str(), times.size(), static_cast<unsigned long long>(anomalies), first,
              static_cast<unsigned long long>(garbage), times.empty() ? 0.0 : static_cast<double>(ns) / times.size(),
              det->SaveState().size());
  if (garbage) std::cerr << "faultline detectors test: " << plugin_det->first_garbage() << "\n";
  return 0;
}

}  // namespace

Runner RegisterDetectors(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("detectors", "Anomaly detectors: scoring and offline runs");
  sub->require_subcommand(1);
  auto f = std::make_shared<NabFlags>();
  CLI::App* nab = sub->add_subcommand("nab", "Score a detector's per-point outputs with NAB's rules (NAB results layout)");
  nab->add_option("--nab-dir", f->nab_dir, "NAB data: config/, data/, labels/, results/")->required();
  nab->add_option("--detector", f->detector, "Score stored results: <results>/<category>/<detector>_<file>.csv");
  nab->add_option("--run", f->run, "Run this registered detector on <nab-dir>/data and score it");
  nab->add_option("--param", f->params, "Detector parameter NAME=VALUE (repeatable)");
  nab->add_option("--results-dir", f->results_dir, "Results directory (default: <nab-dir>/results/<detector>)");
  auto t = std::make_shared<TestFlags>();
  CLI::App* test = sub->add_subcommand("test", "Load a detector plugin, feed it a timestamp,value CSV, print verdicts and timing");
  test->add_option("--plugin", t->plugin, "Plugin shared library")->required();
  test->add_option("--data", t->data, "CSV: timestamp,value")->required();
  test->add_option("--param", t->params, "Detector parameter NAME=VALUE (repeatable)");
  auto r = std::make_shared<TestFlags>();
  CLI::App* run = sub->add_subcommand("run", "Run a built-in detector over a timestamp,value CSV; print per-point scores and verdicts");
  run->add_option("--detector", r->detector, "Registered detector (see: faultline detectors list)")->required();
  run->add_option("--param", r->params, "Detector parameter NAME=VALUE (repeatable)");
  run->add_option("file", r->data, "CSV: timestamp,value")->required();
  CLI::App* list = sub->add_subcommand("list", "List the built-in detectors and their parameters");
  CLI::App* metrics = sub->add_subcommand(
      "metrics", "List the metric catalog: name, unit, family, entity kinds, how it is computed");
  return [f, t, r, nab, test, run, list, metrics] {
    if (nab->parsed()) return RunNab(*f);
    if (test->parsed()) return RunPluginTest(*t);
    if (run->parsed()) return RunPluginTest(*r);
    if (metrics->parsed()) {
      std::printf("%-22s %-12s %-8s %-28s %s\n", "metric", "unit", "family", "kinds", "computed");
      for (const MetricInfo& m : Metrics()) {
        std::printf("%-22s %-12s %-8s %-28s %s\n", std::string(m.name).c_str(),
                    std::string(m.unit).c_str(), std::string(MetricFamilyName(m.family)).c_str(),
                    m.kinds.Describe().c_str(), std::string(m.computed).c_str());
      }
      return 0;
    }
    (void)list;
    for (const auto* info : detectors::DetectorRegistry::Global().List()) {
      std::printf("%-12s %s\n", info->name.c_str(), info->description.c_str());
    }
    return 0;
  };
}

}  // namespace faultline::cli
