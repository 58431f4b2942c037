// libFuzzer target: container runtimes' inspect answers (Docker/Podman, CRI-O), OCI bundle configs
// (containerd) and pod names, bytes
// the agent reads from sockets it does not control.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "faultline/agent/container_meta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (auto parse : {faultline::agent::ParseDockerInspect, faultline::agent::ParseCrioInspect,
                     faultline::agent::ParseOciConfig}) {
    auto m = parse(text);
    if (m.ok() && !m->pod_name().empty() && m->workload().empty()) abort();
    if (!m.ok() && m.status().message().empty()) abort();
  }
  // A workload is the pod name or a prefix of it.
  const std::string w = faultline::agent::WorkloadOfPod(text);
  if (text.substr(0, w.size()) != w) abort();
  return 0;
}
