// libFuzzer target: Kubernetes API objects (list items, watch event objects), bytes from an API
// server the agent does not control.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "faultline/agent/kube.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const char* kind : {"Pod", "Service"}) {
    auto o = faultline::agent::ParseKubeObject(kind, text);
    if (o.ok() && o->name.empty()) abort();
    if (!o.ok() && o.status().message().empty()) abort();
  }
  return 0;
}
