// libFuzzer target: changelog records (changelog.h), which a processor reads back from the
// changelog topic when it restores a partition. The input is a log: records, each preceded by
// its length (2 bytes, little-endian). Anything must decode or be refused with a message; what
// decodes must encode back to the same bytes (a format-1 record: to a current one that decodes to
// the same fields); the replay must keep only a chain it can use, made of writers not fenced.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "faultline/stream/changelog.h"

using faultline::stream::ChangelogKind;
using faultline::stream::ChangelogReplay;
using faultline::stream::DecodeChangelogRecord;
using faultline::stream::EncodeChangelogRecord;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ChangelogReplay replay("faultline.events-0");
  int64_t offset = 0;
  while (in.size() >= 2) {
    const size_t len = static_cast<uint8_t>(in[0]) | size_t{static_cast<uint8_t>(in[1])} << 8;
    const size_t n = std::min(in.size() - 2, len);
    const std::string_view record = in.substr(2, n);
    in.remove_prefix(2 + n);
    auto decoded = DecodeChangelogRecord(record);
    if (decoded.ok() && record.starts_with("FLC1")) {
      const std::string again = EncodeChangelogRecord(*decoded);
      auto current = DecodeChangelogRecord(again);
      if (!current.ok() || current->kind != decoded->kind || current->epoch != 0 ||
          current->chain != decoded->chain || current->seq != decoded->seq ||
          current->part != decoded->part || current->last != decoded->last ||
          current->body != decoded->body)
        abort();
    } else if (decoded.ok()) {
      if (EncodeChangelogRecord(*decoded) != record) abort();
    } else if (decoded.status().message().rfind("changelog record:", 0) != 0) {
      abort();
    }
    const faultline::Status s = replay.Add(offset++, record);
    if (s.ok() != decoded.ok()) abort();
  }
  const auto chain = replay.Finish();
  if (chain.chain == 0 && (!chain.snapshot.empty() || !chain.deltas.empty())) abort();
  uint64_t seq = chain.base_seq;
  for (const auto& [s, batch] : chain.deltas) {
    if (s != ++seq) abort();  // only contiguous deltas are kept
  }
  if (chain.last_seq != seq) abort();
  if (chain.epoch > chain.max_epoch) abort();
  if (chain.chain != 0) {
    // The state is made of writers not fenced, the first of them the snapshot's, in seq order.
    if (chain.writers.empty() || chain.writers.front().second != chain.base_seq) abort();
    for (size_t i = 0; i < chain.writers.size(); ++i) {
      if (chain.writers[i].second > chain.last_seq) abort();
      if (i > 0 && chain.writers[i].second < chain.writers[i - 1].second) abort();
    }
    if (!chain.Holds(chain.chain, chain.last_seq)) abort();
  }
  if (!std::is_sorted(chain.fenced_chains.begin(), chain.fenced_chains.end())) abort();
  if (chain.fenced_chains.size() > chain.fenced) abort();
  return 0;
}
