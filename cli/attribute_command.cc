#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "faultline/topology/attribution.h"
#include "faultline/topology/drilldown.h"

namespace faultline::cli {

void AddAttributionFlags(CLI::App* sub, topology::AttributionOptions* o,
                         const std::string& help_prefix) {
  auto add = [&](const char* flag, auto* value, const char* help) {
    sub->add_option(flag, *value, help_prefix + help)->capture_default_str();
  };
  add("--z", &o->z_threshold, "anomalous beyond this robust z");
  add("--min-correlation", &o->min_correlation, "shapes agree from this Pearson correlation");
  add("--min-change", &o->min_change, "anomalous only from this change, relative to the baseline");
  add("--min-explained-share", &o->min_explained_share,
      "a callee explains a symptom in its unit from this share of its change");
  add("--lead-windows", &o->lead_windows, "a cause may start this many windows before the alarm");
  add("--correlation-windows", &o->correlation_windows,
      "shapes are compared over the test period and this many windows before it");
  add("--min-baseline", &o->min_baseline, "baseline windows needed to judge a series");
  add("--timeout-scale-ms", &o->timeout_scale_ms,
      "latency or waits explain errors from this many ms more");
  add("--contention-share", &o->contention_share,
      "waits explain a slowdown from this share of its rise");
  add("--saturated-busy-ratio", &o->saturated_busy_ratio,
      "a machine this busy is saturated (a limit)");
}

Runner RegisterAttribute(CLI::App& app) {
  auto files = std::make_shared<std::vector<std::string>>();
  auto o = std::make_shared<topology::DrillDownOptions>();
  auto timing = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand("attribute",
                                     "Root-cause drill-down: print the dimension-value "
                                     "combinations that explain a KPI's deviation");
  auto situation = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>("text");
  auto ao = std::make_shared<topology::AttributionOptions>();
  sub->add_option("cases", *files, "CSV cases in the Squeeze layout: real,predict,<dimension>,…");
  sub->add_option(
      "--situation", *situation,
      "A situation (JSON): rank the root causes of its alarm (horizontal, vertical, network)");
  sub->add_option("--format", *format, "Output of --situation: text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  AddAttributionFlags(sub, ao.get(), "--situation: ");
  sub->add_option("--min-purity", o->min_purity,
                  "Share of an element's leaves that must be abnormal")
      ->capture_default_str();
  sub->add_option("--robust-z", o->robust_z,
                  "Abnormal beyond this many robust sd of the deviations")
      ->capture_default_str();
  sub->add_option("--min-deviation", o->min_deviation,
                  "Abnormal at least at this relative deviation")
      ->capture_default_str();
  sub->add_option("--min-share", o->min_share, "Share of abnormal leaves an element must explain")
      ->capture_default_str();
  sub->add_flag("--timing", *timing, "Prefix each line with the file and the milliseconds it took");
  return [=] {
    if (!situation->empty()) {
      if (!files->empty()) {
        std::cerr << "faultline attribute: give CSV cases or --situation, not both\n";
        return 2;
      }
      std::ifstream in(*situation, std::ios::binary);
      if (!in) {
        std::cerr << "faultline attribute: " << *situation << ": cannot open\n";
        return 1;
      }
      std::stringstream text;
      text << in.rdbuf();
      auto s = topology::ParseSituationJson(text.str(), *situation);
      if (!s.ok()) {
        std::cerr << "faultline attribute: " << s.status().message() << "\n";
        return 1;
      }
      const topology::AttributionResult r = topology::Attribute(*s, *ao);
      std::cout << (*format == "json" ? topology::AttributionToJson(r) + "\n"
                                      : topology::AttributionToText(r));
      return 0;
    }
    if (files->empty()) {
      std::cerr << "faultline attribute: give CSV cases or --situation FILE\n";
      return 2;
    }
    int rc = 0;
    for (const std::string& path : *files) {
      std::ifstream in(path, std::ios::binary);
      if (!in) {
        std::cerr << "faultline attribute: " << path << ": cannot open\n";
        rc = 1;
        continue;
      }
      std::stringstream text;
      text << in.rdbuf();
      const auto t0 = std::chrono::steady_clock::now();
      auto cube = topology::ParseSqueezeCsv(text.str(), path);
      if (!cube.ok()) {
        std::cerr << "faultline attribute: " << cube.status().message() << "\n";
        rc = 1;
        continue;
      }
      const topology::DrillDownResult r = topology::DrillDown(*cube, *o);
      const std::string set = topology::FormatElements(*cube, r.elements);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (*timing) {
        std::printf("%s\t%.2f\t%s\n", path.c_str(), ms, set.c_str());
      } else {
        std::printf("%s\n", set.c_str());
      }
    }
    return rc;
  };
}

}  // namespace faultline::cli
