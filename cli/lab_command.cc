// faultline lab: the fault-injection lab (lab/): a microservice system on emulated machines, real
// faults, and a scoreboard of the diagnosis. The lab is a Python program next to the binary's
// sources (lab/, or share/faultline/lab when installed); this subcommand finds it and runs it with
// this binary as the pipeline's, passing every argument through.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"

namespace faultline::cli {
namespace {

namespace fs = std::filesystem;

// $FAULTLINE_LAB_DIR, else lab/ beside the build directory (a source checkout), else the
// installed share/faultline/lab.
std::string FindLab(const fs::path& self) {
  if (const char* dir = getenv("FAULTLINE_LAB_DIR")) return dir;
  for (const fs::path& p : {self.parent_path().parent_path() / "lab",
                            self.parent_path().parent_path() / "share" / "faultline" / "lab"}) {
    std::error_code ec;
    if (fs::exists(p / "lab.py", ec)) return p.string();
  }
  return "";
}

}  // namespace

Runner RegisterLab(CLI::App& app) {
  CLI::App* sub = app.add_subcommand(
      "lab", "The fault-injection lab: up|down|status|check-clean the system under test, run "
             "SCENARIO.yaml… [--repeat N] to score the diagnosis on it, or demo: one fault and "
             "its incident report (lab/README.md)");
  sub->prefix_command();  // everything after `lab` is the lab's own
  return [sub]() {
    std::vector<std::string> args = sub->remaining();
    if (args.empty()) {
      std::cerr << "faultline lab: expected up, down, status, check-clean, run or demo (see lab/README.md)\n";
      return 2;
    }
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    const std::string dir = FindLab(self);
    if (dir.empty()) {
      std::cerr << "faultline lab: the lab's files are not found (lab/ beside " << self.parent_path().string()
                << ", or set FAULTLINE_LAB_DIR)\n";
      return 2;
    }
    std::vector<std::string> argv = {"/usr/bin/python3"};
    if (args[0] == "run" || args[0] == "demo") {
      argv.push_back(dir + "/run.py");
      if (args[0] == "demo") argv.push_back("--demo");
      argv.push_back("--faultline");
      argv.push_back(self.string());
      argv.insert(argv.end(), args.begin() + 1, args.end());
    } else {
      argv.push_back(dir + "/lab.py");
      argv.insert(argv.end(), args.begin(), args.end());
    }
    std::vector<char*> c;
    for (std::string& a : argv) c.push_back(a.data());
    c.push_back(nullptr);
    execvp("/usr/bin/python3", c.data());
    std::cerr << "faultline lab: cannot run /usr/bin/python3: " << std::strerror(errno) << "\n";
    return 1;
  };
}

}  // namespace faultline::cli
