// The detector API: a detector watches one series of (time, value) points in time order and
// answers each with a verdict. In-tree detectors implement Detector and register a factory under
// a unique name; the registry creates them from parameters (strings, validated by the factory
// with errors that name the parameter and what was expected).
//
// Thread-safety: a Detector instance is used by one thread at a time. The registry is safe to
// read from any thread once static registration is over.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/catalog.h"
#include "faultline/common/status.h"

namespace faultline::detectors {

inline constexpr double kMaxDetectorValue = 1e150;

struct Verdict {
  bool anomalous = false;
  // How anomalous, in [0, 1): monotonic in the detector's own statistic, comparable across
  // points of one series (NAB tunes its threshold on it).
  double score = 0;
  Direction direction = Direction::kNone;
  // The expected value and band, when the detector has a model of normal (has_band).
  bool has_band = false;
  double expected = 0, lower = 0, upper = 0;
};

class Detector {
 public:
  virtual ~Detector() = default;
  // Observes the next point and judges it. Times must not decrease; values must be finite and of
  // magnitude below kMaxDetectorValue (so that squares and sums of squares stay finite): callers
  // that take values from outside check this (ParseSeriesCsv does, the stream does).
  virtual Verdict Observe(int64_t time_s, double value) = 0;
  // The whole state as bytes; RestoreState(SaveState()) continues with identical verdicts.
  virtual std::string SaveState() const = 0;
  // Errors: kInvalidArgument naming what in the bytes was wrong.
  virtual Status RestoreState(std::string_view bytes) = 0;
};

using Params = std::map<std::string, std::string>;

// Reads typed parameters; every error names the detector, the parameter and the allowed range.
class ParamReader {
 public:
  ParamReader(std::string detector, const Params& params) : detector_(std::move(detector)), params_(params) {}
  Result<double> Double(const std::string& name, double fallback, double min, double max);
  Result<int64_t> Int(const std::string& name, int64_t fallback, int64_t min, int64_t max);
  // Unknown parameter names are an error (a typo must not silently fall back to a default).
  Status CheckAllKnown(const std::vector<std::string>& known) const;

 private:
  std::string detector_;
  const Params& params_;
};

using DetectorFactory = std::function<Result<std::unique_ptr<Detector>>(const Params&)>;

struct DetectorInfo {
  std::string name;
  std::string description;  // one line, with the parameters and their defaults
  DetectorFactory factory;
};

class DetectorRegistry {
 public:
  static DetectorRegistry& Global();
  // Errors: kInvalidArgument when `name` is already registered.
  Status Register(DetectorInfo info);
  // Errors: kNotFound naming the known detectors; the factory's own errors.
  Result<std::unique_ptr<Detector>> Create(const std::string& name, const Params& params) const;
  std::vector<const DetectorInfo*> List() const;

 private:
  std::map<std::string, DetectorInfo> detectors_;
};

// In a detector's .cc: FAULTLINE_REGISTER_DETECTOR(ewma, "…", [](const Params& p) { … });
// The factory is the rest of the arguments, so a lambda may contain commas.
#define FAULTLINE_REGISTER_DETECTOR(id, description, ...)                                       \
  static const bool fl_registered_##id = [] {                                                   \
    ::faultline::Status s = ::faultline::detectors::DetectorRegistry::Global().Register(         \
        {#id, description, __VA_ARGS__});                                                       \
    if (!s.ok()) std::abort();                                                                  \
    return true;                                                                                \
  }()

}  // namespace faultline::detectors
