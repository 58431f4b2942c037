#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "faultline/diagnosis/diagnose.h"
#include "faultline/fta/fault_tree.h"
#include "faultline/topology/situation.h"

namespace faultline::cli {

Runner RegisterDiagnose(CLI::App& app) {
  struct Flags {
    std::string situation, trees, format = "text", dot_out;
    topology::AttributionOptions attribution;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "diagnose",
      "Diagnose a recorded situation: attribution, drill-down and fault trees; print the incident");
  sub->add_option("--situation", f->situation, "A situation (JSON: faultline stream situation)")
      ->required();
  sub->add_option("--trees", f->trees, "Fault trees: a file or directory (default: built in)");
  sub->add_option("--format", f->format, "text, json, markdown or dot (the propagation path)")
      ->check(CLI::IsMember({"text", "json", "markdown", "dot"}))
      ->capture_default_str();
  sub->add_option("--dot-out", f->dot_out,
                  "Also write the propagation path as Graphviz DOT to this file");
  sub->add_option("--z", f->attribution.z_threshold, "Anomalous beyond this robust z")
      ->capture_default_str();
  sub->add_option("--min-correlation", f->attribution.min_correlation,
                  "Shapes agree from this Pearson correlation")
      ->capture_default_str();
  return [f] {
    std::ifstream in(f->situation, std::ios::binary);
    if (!in) {
      std::cerr << "faultline diagnose: " << f->situation << ": cannot open\n";
      return 1;
    }
    std::stringstream text;
    text << in.rdbuf();
    auto s = topology::ParseSituationJson(text.str(), f->situation);
    if (!s.ok()) {
      std::cerr << "faultline diagnose: " << s.status().message() << "\n";
      return 1;
    }
    fta::FaultTrees loaded;
    const fta::FaultTrees* trees = &fta::DefaultFaultTrees();
    if (!f->trees.empty()) {
      auto t = fta::LoadFaultTrees(f->trees);
      if (!t.ok()) {
        std::cerr << "faultline diagnose: " << t.status().message() << "\n";
        return 1;
      }
      loaded = std::move(*t);
      trees = &loaded;
    }
    diagnosis::DiagnoseOptions o;
    o.attribution = f->attribution;
    o.situation_source = f->situation;
    const diagnosis::Diagnosis d = diagnosis::Diagnose(*s, *trees, o);
    if (!d.incident) {
      // No incident is an answer, not an error: say why, on stdout as the result.
      if (f->format == "json") {
        std::cout << "null\n";
        std::cerr << "faultline diagnose: no incident: " << d.reason << "\n";
      } else {
        std::cout << "no incident: " << d.reason << "\n";
      }
      return 0;
    }
    if (!f->dot_out.empty()) {
      std::ofstream dot(f->dot_out);
      dot << diagnosis::PropagationToDot(*d.incident);
      if (!dot) {
        std::cerr << "faultline diagnose: " << f->dot_out << ": cannot write\n";
        return 1;
      }
    }
    if (f->format == "json") {
      std::cout << diagnosis::IncidentToJson(*d.incident) << "\n";
    } else if (f->format == "markdown") {
      std::cout << diagnosis::IncidentToMarkdown(*d.incident);
    } else if (f->format == "dot") {
      std::cout << diagnosis::PropagationToDot(*d.incident);
    } else {
      std::cout << diagnosis::IncidentToText(*d.incident);
      if (!f->dot_out.empty())
        std::cout << "Propagation graph: " << f->dot_out << " (dot -Tsvg " << f->dot_out
                  << " -o path.svg)\n";
    }
    return 0;
  };
}

}  // namespace faultline::cli
