// libFuzzer target: the HTTP/1.x connection parser fed arbitrary bytes as arbitrary syscalls.
// Input layout, repeated: one control byte (direction, whether part of the payload went
// uncaptured, a tail), a length byte, then that many payload bytes. Exercises framing, pairing,
// the uncaptured-byte paths and close, and checks the parser's own invariants. A second parser
// gets each payload's first byte as a syscall of its own (at the same time): a header block is
// then always buffered, never parsed in place, and both must find the same exchanges, unless the
// stream was lost somewhere (a lost stream resyncs on a syscall that starts a message, so there
// the syscall boundaries rightly matter).
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "faultline/agent/http_parser.h"

using faultline::agent::ByteDirection;
using faultline::agent::HttpConnectionParser;
using faultline::agent::HttpExchange;
using faultline::agent::HttpParserStats;
using faultline::agent::HttpRole;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  HttpConnectionParser parser(static_cast<HttpRole>(data[0] % 3));
  HttpConnectionParser split(static_cast<HttpRole>(data[0] % 3));
  std::vector<HttpExchange> out, split_out;
  size_t i = 1;
  uint64_t ts = 1;
  while (i + 2 <= size) {
    const uint8_t control = data[i];
    const size_t len = std::min<size_t>(data[i + 1], size - i - 2);
    std::string_view bytes(reinterpret_cast<const char*>(data + i + 2), len);
    i += 2 + len;
    const ByteDirection dir = (control & 1) ? ByteDirection::kEgress : ByteDirection::kIngress;
    const uint64_t skipped = (control & 2) ? (control >> 2) * 97u : 0;  // bytes never captured
    std::string_view head = bytes, tail;
    if ((control & 2) && len >= 2) {  // the last quarter of the bytes arrive as the tail
      head = bytes.substr(0, len - len / 4);
      tail = bytes.substr(len - len / 4);
    }
    parser.OnData(dir, head, head.size() + skipped + tail.size(), tail, ts, &out);
    if (head.empty()) {
      split.OnData(dir, head, head.size() + skipped + tail.size(), tail, ts, &split_out);
    } else {
      split.OnData(dir, head.substr(0, 1), 1, {}, ts, &split_out);
      split.OnData(dir, head.substr(1), head.size() - 1 + skipped + tail.size(), tail, ts, &split_out);
    }
    ts++;
  }
  parser.OnClose(ts, &out);
  split.OnClose(ts, &split_out);
  auto lost = [](const HttpParserStats& st) {
    return st.garbage + st.header_too_large + st.framing_lost > 0;
  };
  if (lost(parser.stats()) || lost(split.stats())) return 0;
  if (out.size() != split_out.size()) abort();
  for (size_t k = 0; k < out.size(); ++k) {
    const HttpExchange &a = out[k], &b = split_out[k];
    if (a.method != b.method || a.path != b.path || a.version != b.version || a.status != b.status ||
        a.request_bytes != b.request_bytes || a.response_bytes != b.response_bytes ||
        a.request_start_ns != b.request_start_ns || a.response_first_ns != b.response_first_ns ||
        a.response_end_ns != b.response_end_ns || a.outcome != b.outcome || a.role != b.role)
      abort();
  }
  for (const HttpExchange& x : out) {
    if (x.path.size() > HttpConnectionParser::kMaxPathBytes) abort();
    if (x.response_end_ns != 0 && x.response_end_ns < x.response_first_ns) abort();
  }
  return 0;
}
