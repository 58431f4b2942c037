// libFuzzer target: an incident's JSON as consumers and the incident store read it back
// (IncidentFromJson). Any input is an incident or an error; an incident read back must write the
// same JSON again (IncidentToJson(IncidentFromJson(IncidentToJson(i))) is a fixed point).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "faultline/diagnosis/incident.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto i = faultline::diagnosis::IncidentFromJson(json);
  if (!i.ok()) return 0;
  const std::string once = faultline::diagnosis::IncidentToJson(*i);
  auto back = faultline::diagnosis::IncidentFromJson(once);
  if (!back.ok()) abort();
  if (faultline::diagnosis::IncidentToJson(*back) != once) abort();
  return 0;
}
