#include <filesystem>
#include <iostream>

#include "commands.h"
#include "faultline/stream/window_query.h"
#include "faultline/topology/topology_store.h"
#include "faultline/topology/graph.h"

namespace faultline::cli {

Runner RegisterTopology(CLI::App& app) {
  struct Flags {
    std::string state_dir, topic = "faultline.events", format = "text", store;
    int64_t max_age_s = 3600;
    bool no_store = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "topology",
      "Print the service/machine graph built from the stream's windows (and kept in RocksDB)");
  sub->add_option("--state-dir", f->state_dir, "The stream's state directory")->required();
  sub->add_option("--events-topic", f->topic, "The topic the stream consumed")
      ->capture_default_str();
  sub->add_option("--format", f->format, "text, json or dot (Graphviz)")
      ->check(CLI::IsMember({"text", "json", "dot"}))
      ->capture_default_str();
  sub->add_option(
         "--max-age", f->max_age_s,
         "Forget nodes and edges unseen for this many seconds before the newest observation")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--store", f->store,
                  "The topology's RocksDB store (default: <state-dir>/topology)");
  sub->add_flag("--no-store", f->no_store, "Build from the windows only; read and write no store");
  return [f] {
    const std::string store = f->store.empty() ? f->state_dir + "/topology" : f->store;
    topology::Topology graph;
    if (!f->no_store) {
      auto loaded = topology::LoadTopology(store);
      if (loaded.ok()) {
        graph = std::move(*loaded);
      } else if (loaded.status().code() != StatusCode::kNotFound) {
        std::cerr << "faultline topology: " << loaded.status().message() << "\n";
        return 1;
      }
    }
    int64_t window_s = 0;
    auto windows = stream::QueryWindows(f->state_dir, f->topic, stream::WindowQuery{}, &window_s);
    if (!windows.ok()) {
      std::cerr << "faultline topology: " << windows.status().message() << "\n";
      return 1;
    }
    graph.ObserveWindows(*windows, window_s);
    // Event time, not the wall clock: recorded data ages by its own newest observation.
    graph.AgeOut(graph.LatestSeen(), f->max_age_s);
    if (!f->no_store) {
      if (Status s = topology::SaveTopology(graph, store); !s.ok()) {
        std::cerr << "faultline topology: " << s.message() << "\n";
        return 1;
      }
    }
    std::cout << (f->format == "json"  ? graph.ToJson() + "\n"
                  : f->format == "dot" ? graph.ToDot()
                                       : graph.ToText());
    return 0;
  };
}

}  // namespace faultline::cli
