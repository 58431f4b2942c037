#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "faultline/detectors/detector.h"

namespace faultline::detectors {

Result<double> ParamReader::Double(const std::string& name, double fallback, double min, double max) {
  auto it = params_.find(name);
  if (it == params_.end()) return fallback;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0' || errno != 0 || !std::isfinite(v)) {
    return InvalidArgument(detector_ + ": parameter " + name + "='" + it->second + "': expected a number");
  }
  if (v < min || v > max) {
    return InvalidArgument(detector_ + ": parameter " + name + "=" + it->second + ": must be in [" +
                           std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return v;
}

Result<int64_t> ParamReader::Int(const std::string& name, int64_t fallback, int64_t min, int64_t max) {
  auto it = params_.find(name);
  if (it == params_.end()) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0' || errno != 0) {
    return InvalidArgument(detector_ + ": parameter " + name + "='" + it->second + "': expected an integer");
  }
  if (v < min || v > max) {
    return InvalidArgument(detector_ + ": parameter " + name + "=" + it->second + ": must be in [" +
                           std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return static_cast<int64_t>(v);
}

Status ParamReader::CheckAllKnown(const std::vector<std::string>& known) const {
  for (const auto& [name, value] : params_) {
    bool found = false;
    for (const auto& k : known) found = found || k == name;
    if (!found) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return InvalidArgument(detector_ + ": unknown parameter '" + name + "' (known: " + list + ")");
    }
  }
  return Status::Ok();
}

DetectorRegistry& DetectorRegistry::Global() {
  static DetectorRegistry* registry = new DetectorRegistry();
  return *registry;
}

Status DetectorRegistry::Register(DetectorInfo info) {
  if (detectors_.count(info.name)) return InvalidArgument("detector '" + info.name + "' is registered twice");
  std::string name = info.name;
  detectors_.emplace(std::move(name), std::move(info));
  return Status::Ok();
}

Result<std::unique_ptr<Detector>> DetectorRegistry::Create(const std::string& name, const Params& params) const {
  auto it = detectors_.find(name);
  if (it == detectors_.end()) {
    std::string known;
    for (const auto& [n, _] : detectors_) known += (known.empty() ? "" : ", ") + n;
    return NotFound("no detector named '" + name + "' (known: " + known + ")");
  }
  return it->second.factory(params);
}

std::vector<const DetectorInfo*> DetectorRegistry::List() const {
  std::vector<const DetectorInfo*> out;
  for (const auto& [_, info] : detectors_) out.push_back(&info);
  return out;
}

}  // namespace faultline::detectors
