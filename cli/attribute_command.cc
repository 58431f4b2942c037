#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "faultline/topology/drilldown.h"

namespace faultline::cli {

Runner RegisterAttribute(CLI::App& app) {
  auto files = std::make_shared<std::vector<std::string>>();
  auto o = std::make_shared<topology::DrillDownOptions>();
  auto timing = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand(
      "attribute", "Root-cause drill-down: print the dimension-value combinations that explain a KPI's deviation");
  sub->add_option("cases", *files, "CSV cases in the Squeeze layout: real,predict,<dimension>,…")->required();
  sub->add_option("--min-purity", o->min_purity, "Share of an element's leaves that must be abnormal")
      ->capture_default_str();
  sub->add_option("--robust-z", o->robust_z, "Abnormal beyond this many robust sd of the deviations")
      ->capture_default_str();
  sub->add_option("--min-deviation", o->min_deviation, "Abnormal at least at this relative deviation")
      ->capture_default_str();
  sub->add_option("--min-share", o->min_share, "Share of abnormal leaves an element must explain")
      ->capture_default_str();
  sub->add_flag("--timing", *timing, "Prefix each line with the file and the milliseconds it took");
  return [=] {
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
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
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
