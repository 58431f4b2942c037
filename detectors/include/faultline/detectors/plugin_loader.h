// Loading detector plugins (shared libraries speaking plugin_abi.h) and using them as Detectors.
//
// LoadDetectorPlugin dlopens a library, checks its entry symbol, ABI version and required
// functions, and returns a handle that creates Detector instances. Each error names the file and
// what was wrong. A plugin's verdicts are checked: a non-finite or out-of-range score, an unknown
// direction or a failed observe() is replaced by a quiet verdict and counted in
// PluginDetector::garbage() with the first reason. The handle must outlive its detectors.
#pragma once

#include <memory>
#include <string>

#include "faultline/detectors/detector.h"

struct fl_detector_plugin;  // plugin_abi.h (C, global namespace)

namespace faultline::detectors {

class DetectorPlugin;

// A Detector backed by a plugin instance.
class PluginDetector : public Detector {
 public:
  ~PluginDetector() override;
  Verdict Observe(int64_t time_s, double value) override;
  std::string SaveState() const override;
  Status RestoreState(std::string_view bytes) override;
  // Verdicts the plugin got wrong, and the first reason.
  uint64_t garbage() const { return garbage_; }
  const std::string& first_garbage() const { return first_garbage_; }

 private:
  friend class DetectorPlugin;
  PluginDetector(const DetectorPlugin* plugin, void* instance) : plugin_(plugin), instance_(instance) {}
  const DetectorPlugin* plugin_;
  void* instance_;
  uint64_t garbage_ = 0;
  std::string first_garbage_;
};

// Loads a plugin and registers it in DetectorRegistry::Global() under its own name, so that
// detector rules can name it like a built-in; the plugin stays loaded for the process's life.
// Errors: Load's, and kInvalidArgument when a detector of that name is already registered.
Status RegisterDetectorPlugin(const std::string& path);

class DetectorPlugin {
 public:
  // Errors (kInvalidArgument / kNotFound) name the path and the problem: cannot be loaded, no
  // entry symbol, entry returned NULL, ABI major mismatch, a required function missing, no name.
  static Result<std::unique_ptr<DetectorPlugin>> Load(const std::string& path);
  ~DetectorPlugin();
  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  // Errors: the plugin's create() error, prefixed with the plugin's name.
  Result<std::unique_ptr<PluginDetector>> Create(const Params& params) const;

 private:
  friend class PluginDetector;
  DetectorPlugin() = default;
  void* handle_ = nullptr;
  const ::fl_detector_plugin* table_ = nullptr;
  std::string name_, path_;
};

}  // namespace faultline::detectors
