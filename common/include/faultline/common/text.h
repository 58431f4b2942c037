// Small text helpers shared by the parsers of simple line formats (CSV cases and series).
#pragma once

#include <string_view>
#include <vector>

namespace faultline {

// The fields of `line` between `sep` characters (no quoting: the formats that use it have none).
// An empty line gives one empty field.
inline std::vector<std::string_view> SplitFields(std::string_view line, char sep = ',') {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t at = line.find(sep, start);
    out.push_back(line.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

// Takes the next line (without its '\n' or "\r\n") off the front of `text`.
inline std::string_view NextLine(std::string_view* text) {
  const size_t nl = text->find('\n');
  std::string_view line = text->substr(0, nl);
  text->remove_prefix(nl == std::string_view::npos ? text->size() : nl + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

}  // namespace faultline
