// A section of a YAML configuration read one way: every field declared once (its name, how it is
// read, its bounds), read in the file's order, unknown keys refused with the known ones listed,
// and every error "SOURCE:LINE: FIELD: what was wrong":
//   "d.yaml:3: unknown setting 'lookback' (known: lookback_seconds, idle_seconds)"
//   "d.yaml:4: lookback_seconds: expected an integer in 30..86400, got 'soon'"
//   "d.yaml:5: sync_commits: expected true or false, got 'yes'"
// The stream's and the diagnosis's configurations are read with it; a nested section (a
// webhook) is a ConfigSection with a prefix ("webhooks[0].").
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "faultline/common/status.h"

namespace YAML {
class Node;
}  // namespace YAML

namespace faultline {

// "SOURCE:LINE: what" at `node`'s line.
Status ConfigError(const std::string& source, const YAML::Node& node, const std::string& what);

class ConfigSection {
 public:
  // `prefix` goes before every field name in errors ("webhooks[0]."); `what` says what the
  // section's keys are ("settings", "fields").
  explicit ConfigSection(std::string prefix = "", std::string what = "settings");

  // An integer in lo..hi.
  template <typename T>
  ConfigSection& Integer(std::string name, int64_t lo, int64_t hi, T* out) {
    return IntegerWith(std::move(name), lo, hi, [out](int64_t v) { *out = static_cast<T>(v); });
  }
  ConfigSection& IntegerWith(std::string name, int64_t lo, int64_t hi,
                             std::function<void(int64_t)> set);
  // true or false.
  ConfigSection& Bool(std::string name, bool* out);
  // Any scalar; `expected` says what it names in errors ("a topic name").
  ConfigSection& Text(std::string name, std::string* out, std::string expected);
  // A list of scalars (replacing what `out` held); `expected` names an item ("a service name").
  ConfigSection& TextList(std::string name, std::vector<std::string>* out, std::string expected);
  // A field read by `read`, given its value and its name as errors show it ("webhooks[0].url").
  // An error it returns that does not start with the source is placed at the value's line.
  ConfigSection& Custom(std::string name,
                        std::function<Status(const YAML::Node& value, const std::string& field)> read);

  // Reads `node`, which must be a mapping (null reads nothing). Errors: kInvalidArgument as above.
  Status Read(const std::string& source, const YAML::Node& node) const;
  // The declared names, in declaration order.
  std::vector<std::string> names() const;

 private:
  struct Field {
    std::string name;
    std::function<Status(const std::string& source, const YAML::Node& value,
                         const std::string& field)>
        read;
  };
  std::string prefix_, what_;
  std::vector<Field> fields_;
};

}  // namespace faultline
