#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "faultline/common/metrics.h"
#include "faultline/diagnosis/diagnose.h"
#include "faultline/diagnosis/live_runtime.h"
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
    // Live.
    std::string config, watch_format;
    bool watch = false;
    diagnosis::LiveRuntimeOptions live;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "diagnose",
      "Diagnose a recorded situation (--situation), or live: detectors on the window stream, "
      "incidents to Kafka and webhooks (--brokers)");
  sub->add_option("--situation", f->situation, "A situation (JSON: faultline stream situation)");
  sub->add_option("--brokers", f->live.brokers, "Live: the Kafka bootstrap servers HOST:PORT[,…]");
  sub->add_option("--state-dir", f->live.state_dir, "Live: where the diagnosis keeps its state");
  sub->add_option("--config", f->config, "Live: YAML settings (detectors, entry points, webhooks…)");
  sub->add_option("--metrics-topic", f->live.metrics_topic, "Live: the stream's window topic")
      ->capture_default_str();
  sub->add_option("--incidents-topic", f->live.incidents_topic,
                  "Live: where incidents go (\"\" for none)")
      ->capture_default_str();
  sub->add_option("--http-addr", f->live.http_addr,
                  "Live: serve /metrics, /status, /incidents on HOST:PORT");
  sub->add_flag("--watch", f->watch, "Live: print every incident change on stdout");
  sub->add_option("--trees", f->trees, "Fault trees: a file or directory (default: built in)");
  sub->add_option("--format", f->format, "text, json, markdown or dot (the propagation path)")
      ->check(CLI::IsMember({"text", "json", "markdown", "dot"}))
      ->capture_default_str();
  sub->add_option("--dot-out", f->dot_out,
                  "Also write the propagation path as Graphviz DOT to this file");
  sub->add_option("--svg-out", f->svg_out,
                  "Also render the propagation path to this SVG file (needs Graphviz's dot)");
  AddAttributionFlags(sub, &f->attribution, "");
  return [f] {
    if (f->situation.empty()) {
      if (f->live.brokers.empty()) {
        std::cerr << "faultline diagnose: give --situation FILE, or --brokers (and --state-dir) to "
                     "diagnose live\n";
        return 2;
      }
      diagnosis::LiveRuntimeOptions o = f->live;
      if (!f->trees.empty()) o.trees_path = f->trees;
      if (!f->config.empty()) {
        std::ifstream cin_(f->config);
        if (!cin_) {
          std::cerr << "faultline diagnose: --config " << f->config << ": cannot open\n";
          return 2;
        }
        std::stringstream text;
        text << cin_.rdbuf();
        if (Status s = diagnosis::ParseDiagnosisConfig(text.str(), f->config, &o); !s.ok()) {
          std::cerr << "faultline diagnose: " << s.message() << "\n";
          return 2;
        }
      }
      if (f->watch) {
        const std::string format = f->format;
        o.on_incident = [format](const diagnosis::Incident& i) {
          if (format == "json") {
            std::cout << diagnosis::IncidentToJson(i) << std::endl;
          } else if (format == "markdown") {
            std::cout << diagnosis::IncidentToMarkdown(i) << std::endl;
          } else {
            std::cout << diagnosis::IncidentToText(i) << std::endl;
          }
        };
      }
      MetricsRegistry metrics;
      auto rt = diagnosis::LiveRuntime::Create(std::move(o), &metrics);
      if (!rt.ok()) {
        std::cerr << "faultline diagnose: " << rt.status().message() << "\n";
        return rt.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
      }
      if ((*rt)->http_port() > 0) std::cerr << "http_port=" << (*rt)->http_port() << std::endl;
      if (Status s = (*rt)->Run(g_stop); !s.ok()) {
        std::cerr << "faultline diagnose: " << s.message() << "\n";
        return 1;
      }
      return 0;
    }
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
