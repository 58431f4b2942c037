#include <cstdio>
#include <iostream>

#include "commands.h"
#include "faultline/diagnosis/live_runtime.h"

namespace faultline::cli {

Runner RegisterIncidents(CLI::App& app) {
  struct Flags {
    std::string state_dir, id, format = "text";
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "incidents", "The incidents a live diagnosis keeps: list them, or show one (read-only)");
  sub->require_subcommand(1);
  sub->add_option("--state-dir", f->state_dir, "The diagnosis's --state-dir")->required();
  CLI::App* list = sub->add_subcommand("list", "Open incidents first, then the latest resolved");
  CLI::App* show = sub->add_subcommand("show", "One incident's report");
  show->add_option("id", f->id, "The incident's id (fl-…)")->required();
  show->add_option("--format", f->format, "text, json or markdown")
      ->check(CLI::IsMember({"text", "json", "markdown"}))
      ->capture_default_str();
  return [f, list, show] {
    auto incidents = diagnosis::ReadIncidents(f->state_dir);
    if (!incidents.ok()) {
      std::cerr << "faultline incidents: " << incidents.status().message() << "\n";
      return 1;
    }
    if (list->parsed()) {
      for (const diagnosis::Incident& i : *incidents) {
        std::printf("%s  %-8s #%-3llu %-8s %s  %s\n", i.id.c_str(),
                    std::string(diagnosis::IncidentStatusName(i.status)).c_str(),
                    static_cast<unsigned long long>(i.sequence),
                    std::string(diagnosis::SeverityName(i.severity)).c_str(),
                    diagnosis::Rfc3339(i.opened_at_s).c_str(), i.title.c_str());
      }
      return 0;
    }
    (void)show;
    for (const diagnosis::Incident& i : *incidents) {
      if (i.id != f->id) continue;
      if (f->format == "json") {
        std::cout << diagnosis::IncidentToJson(i) << "\n";
      } else if (f->format == "markdown") {
        std::cout << diagnosis::IncidentToMarkdown(i);
      } else {
        std::cout << diagnosis::IncidentToText(i);
      }
      return 0;
    }
    std::cerr << "faultline incidents: no incident " << f->id << " in " << f->state_dir << "\n";
    return 1;
  };
}

}  // namespace faultline::cli
