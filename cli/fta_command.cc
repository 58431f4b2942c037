#include <cstdio>
#include <iostream>

#include "commands.h"
#include "faultline/fta/fault_tree.h"

namespace faultline::cli {

Runner RegisterFta(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("fta", "Fault trees: check files, list classes");
  sub->require_subcommand(1);
  auto paths = std::make_shared<std::vector<std::string>>();
  CLI::App* check = sub->add_subcommand(
      "check", "Load fault tree files (or directories of them) and report the first mistake");
  check->add_option("paths", *paths, "Files or directories (default: the built-in trees)");
  auto trees = std::make_shared<std::string>();
  CLI::App* list = sub->add_subcommand("list", "List the fault classes and their trees");
  list->add_option("--trees", *trees, "A file or directory (default: the built-in trees)");
  CLI::App* print = sub->add_subcommand("default", "Print the built-in trees (YAML), to start your own from");
  return [=] {
    if (print->parsed()) {
      std::cout << fta::DefaultFaultTreesYaml();
      return 0;
    }
    if (check->parsed()) {
      if (paths->empty()) {
        std::printf("built-in: %zu classes: ok\n", fta::DefaultFaultTrees().classes.size());
        return 0;
      }
      int rc = 0;
      for (const std::string& p : *paths) {
        auto t = fta::LoadFaultTrees(p);
        if (!t.ok()) {
          std::cerr << "faultline fta check: " << t.status().message() << "\n";
          rc = 1;
          continue;
        }
        std::printf("%s: %zu classes: ok\n", p.c_str(), t->classes.size());
      }
      return rc;
    }
    fta::FaultTrees loaded;
    const fta::FaultTrees* t = &fta::DefaultFaultTrees();
    if (!trees->empty()) {
      auto r = fta::LoadFaultTrees(*trees);
      if (!r.ok()) {
        std::cerr << "faultline fta list: " << r.status().message() << "\n";
        return 1;
      }
      loaded = std::move(*r);
      t = &loaded;
    }
    for (const fta::FaultClass& c : t->classes) {
      std::printf("%-26s %4d  %s\n    %s\n", c.name.c_str(), c.priority, c.title.c_str(),
                  fta::Describe(c.tree).c_str());
    }
    return 0;
  };
}

}  // namespace faultline::cli
