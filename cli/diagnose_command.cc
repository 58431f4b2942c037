#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "faultline/diagnosis/diagnose.h"
#include "faultline/fta/fault_tree.h"
#include "faultline/topology/situation.h"

namespace faultline::cli {
namespace {

// Renders DOT to SVG with Graphviz's `dot`, fed on a pipe (no shell). Errors name what failed.
Status RenderSvg(const std::string& dot_text, const std::string& path) {
  int fds[2];
  if (pipe(fds) != 0) return Internal(std::string("pipe: ") + std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) return Internal(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    dup2(fds[0], 0);
    close(fds[0]), close(fds[1]);
    execlp("dot", "dot", "-Tsvg", "-o", path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[0]);
  size_t done = 0;
  while (done < dot_text.size()) {
    const ssize_t n = write(fds[1], dot_text.data() + done, dot_text.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fds[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    return Unavailable("--svg-out: Graphviz's dot is not installed (apt-get install graphviz)");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Internal("--svg-out " + path + ": dot failed");
  return Status::Ok();
}

}  // namespace

Runner RegisterDiagnose(CLI::App& app) {
  struct Flags {
    std::string situation, trees, format = "text", dot_out, svg_out;
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
  sub->add_option("--svg-out", f->svg_out,
                  "Also render the propagation path to this SVG file (needs Graphviz's dot)");
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
    if (!f->svg_out.empty()) {
      if (Status st = RenderSvg(diagnosis::PropagationToDot(*d.incident), f->svg_out); !st.ok()) {
        std::cerr << "faultline diagnose: " << st.message() << "\n";
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
      if (!f->svg_out.empty()) std::cout << "Propagation graph: " << f->svg_out << "\n";
      if (!f->dot_out.empty())
        std::cout << "Propagation graph (DOT): " << f->dot_out << " (dot -Tsvg " << f->dot_out
                  << " -o path.svg)\n";
    }
    return 0;
  };
}

}  // namespace faultline::cli
