// Small text helpers shared by the parsers of simple line formats (CSV cases and series) and the
// YAML loaders (detector rules, fault trees).
#pragma once

#include <string>
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

// `s` as a Graphviz double-quoted string: quotes and backslashes escaped, newlines as spaces.
inline std::string DotQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c == '\n' ? ' ' : c);
  }
  return out + "\"";
}

// `text` as valid UTF-8: every byte that does not start a well-formed sequence (overlong forms,
// surrogates and code points past U+10FFFF included) becomes U+FFFD. Names from the kernel and
// the wire (process names, cgroup paths, request paths) may hold any bytes, and protobuf's
// string fields, JSON and Prometheus labels refuse invalid UTF-8.
inline std::string ValidUtf8(std::string_view text) {
  auto valid_at = [&](size_t i) -> size_t {  // the length of the sequence at i, 0 if invalid
    const auto b = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char c = b(i);
    if (c < 0x80) return 1;
    size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0 || i + n > text.size()) return 0;
    for (size_t k = 1; k < n; ++k)
      if ((b(i + k) & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && b(i + 1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(i + 1) > 0x9F) return 0;  // surrogates
    if (c == 0xF0 && b(i + 1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(i + 1) > 0x8F) return 0;  // past U+10FFFF
    return n;
  };
  std::string out;
  size_t i = 0;
  for (size_t n; i < text.size() && (n = valid_at(i)) > 0;) i += n;
  if (i == text.size()) return std::string(text);  // the common case: one copy
  out.assign(text.substr(0, i));
  while (i < text.size()) {
    const size_t n = valid_at(i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

// An upper bound of a YAML document's nesting depth: flow brackets, plus per line the
// indentation and the block-sequence dashes that open it. yaml-cpp recurses once per level, so
// adversarial nesting would exhaust the stack; loaders refuse documents beyond kMaxYamlNesting
// (real configurations stay far below it). `line_of_max` receives the line (1-based) of the
// deepest point.
inline constexpr int kMaxYamlNesting = 200;
inline int YamlNestingBound(std::string_view text, int* line_of_max) {
  int flow = 0, best = 0, line = 1;
  size_t i = 0;
  while (i < text.size()) {
    int depth = 0;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) depth++, i++;
    while (i + 1 < text.size() && text[i] == '-' && (text[i + 1] == ' ' || text[i + 1] == '\t')) {
      depth++;
      i += 2;
      while (i < text.size() && text[i] == ' ') i++;
    }
    for (; i < text.size() && text[i] != '\n'; ++i) {
      if (text[i] == '[' || text[i] == '{') flow++;
      if ((text[i] == ']' || text[i] == '}') && flow > 0) flow--;
      if (depth + flow > best) best = depth + flow, *line_of_max = line;
    }
    if (depth + flow > best) best = depth + flow, *line_of_max = line;
    i++;
    line++;
  }
  return best;
}

}  // namespace faultline
