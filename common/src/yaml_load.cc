#include "faultline/common/yaml_load.h"

#include <yaml-cpp/yaml.h>

#include "faultline/common/text.h"

namespace faultline {

Status LoadYaml(std::string_view text, const std::string& source, YAML::Node* root) {
  int deep_line = 1;
  if (YamlNestingBound(text, &deep_line) > kMaxYamlNesting)
    return InvalidArgument(source + ":" + std::to_string(deep_line) + ": nested deeper than " +
                           std::to_string(kMaxYamlNesting) + " levels");
  try {
    *root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(source + ":" + std::to_string(e.mark.line + 1) +
                           ": not valid YAML: " + e.msg);
  }
  return Status::Ok();
}

}  // namespace faultline
