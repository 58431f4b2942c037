// libFuzzer target: the situation loader (JSON from files, recordings and other tools) and the
// attribution and diagnosis that run on whatever it accepts. Anything must parse or be refused
// with a message naming the source; what parses must attribute and diagnose without crashing,
// give an incident that is valid JSON, and write back to JSON that parses to the same JSON.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "faultline/diagnosis/diagnose.h"
#include "faultline/topology/attribution.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto s = faultline::topology::ParseSituationJson(in, "fuzz");
  if (!s.ok()) {
    if (s.status().message().rfind("fuzz: ", 0) != 0) abort();
    return 0;
  }
  const auto r = faultline::topology::Attribute(*s);
  if (faultline::topology::AttributionToText(r).empty()) abort();
  const auto d = faultline::diagnosis::Diagnose(*s, faultline::fta::DefaultFaultTrees());
  if (d.incident) {
    const std::string incident = faultline::diagnosis::IncidentToJson(*d.incident);
    if (!nlohmann::json::accept(incident)) abort();
    if (faultline::diagnosis::IncidentToText(*d.incident).empty()) abort();
    if (faultline::diagnosis::PropagationToDot(*d.incident).empty()) abort();
  }
  const std::string json = faultline::topology::SituationToJson(*s);
  auto back = faultline::topology::ParseSituationJson(json, "again");
  if (!back.ok() || faultline::topology::SituationToJson(*back) != json) abort();
  return 0;
}
