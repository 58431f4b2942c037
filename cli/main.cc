// faultline: finds why a microservice system is slow or failing, from the kernel up.
#include <csignal>
#include <map>
#include <string>

#include "commands.h"
#include "faultline/common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace faultline::cli {
std::atomic<bool> g_stop{false};
}

int main(int argc, char** argv) {
  CLI::App app{"faultline: finds why a Kubernetes microservice system is slow or failing"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  std::map<CLI::App*, faultline::cli::Runner> runners;
  auto add = [&](faultline::cli::Runner r) { runners[app.get_subcommands({}).back()] = std::move(r); };
  add(faultline::cli::RegisterAgent(app));
  add(faultline::cli::RegisterBroker(app));
  add(faultline::cli::RegisterDetectors(app));
  add(faultline::cli::RegisterStream(app));
  add(faultline::cli::RegisterAttribute(app));
  add(faultline::cli::RegisterTopology(app));
  add(faultline::cli::RegisterFta(app));
  add(faultline::cli::RegisterDiagnose(app));
  add(faultline::cli::RegisterIncidents(app));
  add(faultline::cli::RegisterLab(app));
  CLI11_PARSE(app, argc, argv);

  // Logs go to stderr: stdout carries data (JSON lines of `agent --output jsonl`, windows, graphs).
  spdlog::set_default_logger(spdlog::stderr_color_mt("faultline"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  if (!faultline::SetLogLevel(log_level)) {
    fprintf(stderr, "faultline: --log-level '%s': expected trace, debug, info, warn, error or off\n", log_level.c_str());
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = [](int) { faultline::cli::g_stop.store(true); };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  for (auto& [sub, run] : runners) {
    if (sub->parsed()) return run();
  }
  return 2;
}
