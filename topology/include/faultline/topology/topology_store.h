// The topology on disk: a RocksDB database holding exactly one graph, for `faultline topology
// --store` (analysis itself never reads or writes it, so the topology library needs no RocksDB).
//
// Record layout: keys "n|<kind name>|<name>" and "e|<edge kind>|<from kind name>|<to kind
// name>|<from>\0<to>", values "<first> <last>[ <requests>]" in decimal. Stores written before the
// entity kinds were unified hold node kinds as numbers 1-4 (service, instance, machine, external);
// LoadTopology reads both.
#pragma once

#include <string>

#include "faultline/common/status.h"
#include "faultline/topology/graph.h"

namespace faultline::topology {

// Replaces what the store at `path` held with `topology` (created if missing).
// Errors: kInternal with the path.
Status SaveTopology(const Topology& topology, const std::string& path);
// Errors: kNotFound when there is no store; kInternal with the path; kInvalidArgument naming a
// malformed record.
Result<Topology> LoadTopology(const std::string& path);

}  // namespace faultline::topology
