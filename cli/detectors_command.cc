#include <cstdio>
#include <iostream>

#include "commands.h"
#include "faultline/detectors/nab_scorer.h"

namespace faultline::cli {
namespace {

struct NabFlags {
  std::string nab_dir = "../shared/data/nab";
  std::string detector;
  std::string results_dir;  // default: <nab_dir>/results/<detector>
};

int RunNab(const NabFlags& f) {
  const std::string results = f.results_dir.empty() ? f.nab_dir + "/results/" + f.detector : f.results_dir;
  auto profiles = detectors::LoadNabProfiles(f.nab_dir + "/config/profiles.json");
  if (!profiles.ok()) {
    std::cerr << "faultline detectors nab: " << profiles.status().message() << "\n";
    return 2;
  }
  auto corpus = detectors::LoadNabResults(results, f.detector, f.nab_dir + "/labels/combined_windows.json");
  if (!corpus.ok()) {
    std::cerr << "faultline detectors nab: " << corpus.status().message() << "\n";
    return 2;
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

}  // namespace

Runner RegisterDetectors(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("detectors", "Anomaly detectors: scoring and offline runs");
  sub->require_subcommand(1);
  auto f = std::make_shared<NabFlags>();
  CLI::App* nab = sub->add_subcommand("nab", "Score a detector's per-point outputs with NAB's rules (NAB results layout)");
  nab->add_option("--nab-dir", f->nab_dir, "NAB data: config/, labels/, results/")->capture_default_str();
  nab->add_option("--detector", f->detector, "Detector name, as in <results>/<category>/<detector>_<file>.csv")->required();
  nab->add_option("--results-dir", f->results_dir, "Results directory (default: <nab-dir>/results/<detector>)");
  return [f] { return RunNab(*f); };
}

}  // namespace faultline::cli
