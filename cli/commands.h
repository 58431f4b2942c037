// The faultline binary's subcommands. Each Register* adds its subcommand to the app and returns
// the function that runs it once parsed (exit code).
#pragma once

#include <atomic>
#include <functional>

#include <CLI/CLI.hpp>
#include <string>

namespace faultline::topology {
struct AttributionOptions;
}

namespace faultline::cli {

using Runner = std::function<int()>;

// Set by SIGINT/SIGTERM; every long-running command stops cleanly when it is set.
extern std::atomic<bool> g_stop;

Runner RegisterAgent(CLI::App& app);
Runner RegisterBroker(CLI::App& app);
Runner RegisterDetectors(CLI::App& app);
Runner RegisterStream(CLI::App& app);
Runner RegisterAttribute(CLI::App& app);
Runner RegisterTopology(CLI::App& app);
Runner RegisterFta(CLI::App& app);
Runner RegisterDiagnose(CLI::App& app);
Runner RegisterIncidents(CLI::App& app);
Runner RegisterLab(CLI::App& app);

// Attribution's thresholds as flags of `sub` (attribute --situation, diagnose --situation): each
// constant's effect can be measured (bench/sensitivity.py). `help_prefix` starts each help text.
void AddAttributionFlags(CLI::App* sub, topology::AttributionOptions* o,
                         const std::string& help_prefix);

}  // namespace faultline::cli
