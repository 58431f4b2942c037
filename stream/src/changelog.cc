#include "faultline/stream/changelog.h"

#include "varint.h"

namespace faultline::stream {
namespace {

constexpr std::string_view kMagic = "FLC1";

}  // namespace

std::string EncodeChangelogRecord(const ChangelogRecord& r) {
  std::string out(kMagic);
  out.reserve(kMagic.size() + 32 + r.body.size());
  out.push_back(static_cast<char>(r.kind));
  PutVarint(&out, r.chain);
  PutVarint(&out, r.seq);
  PutVarint(&out, r.part);
  out.push_back(r.last ? 1 : 0);
  out.append(r.body);
  return out;
}

Result<ChangelogRecord> DecodeChangelogRecord(std::string_view bytes) {
  if (!bytes.starts_with(kMagic))
    return InvalidArgument("changelog record: expected the magic 'FLC1' at its start");
  bytes.remove_prefix(kMagic.size());
  if (bytes.empty()) return InvalidArgument("changelog record: no kind");
  const auto kind = static_cast<uint8_t>(bytes[0]);
  if (kind != 1 && kind != 2)
    return InvalidArgument("changelog record: kind " + std::to_string(kind) +
                           ", expected 1 (delta) or 2 (snapshot)");
  ChangelogRecord out;
  out.kind = static_cast<ChangelogKind>(kind);
  ByteReader r(bytes.substr(1));
  if (!r.Varint(&out.chain) || !r.Varint(&out.seq) || !r.Varint(&out.part))
    return InvalidArgument("changelog record: truncated chain, seq or part");
  const std::string_view tail = bytes.substr(bytes.size() - r.remaining());
  if (tail.empty() || (tail[0] != 0 && tail[0] != 1))
    return InvalidArgument("changelog record: expected a last-part flag 0 or 1");
  if (out.chain == 0) return InvalidArgument("changelog record: chain 0 (no writer)");
  out.last = tail[0] == 1;
  out.body = tail.substr(1);
  return out;
}

Status ChangelogReplay::Add(int64_t offset, std::string_view value) {
  current_.records++;
  current_.bytes += value.size();
  auto decoded = DecodeChangelogRecord(value);
  if (!decoded.ok()) {
    return InvalidArgument("changelog of " + partition_ + " at offset " + std::to_string(offset) +
                           ": " + decoded.status().message());
  }
  const ChangelogRecord& r = *decoded;
  Assembly& a = assembling_;
  const bool continues = a.active && a.kind == r.kind && a.chain == r.chain && a.seq == r.seq &&
                         a.next_part == r.part;
  if (!continues) {
    // A record cut short (its writer failed mid-way) is never complete: drop what was gathered.
    if (a.active) current_.ignored++;
    a = Assembly{};
    if (r.part != 0) {
      current_.ignored++;
      return Status::Ok();
    }
    a.active = true;
    a.kind = r.kind, a.chain = r.chain, a.seq = r.seq;
  }
  a.parts.emplace_back(r.body);
  a.next_part++;
  if (r.last) Complete(a, offset);
  return Status::Ok();
}

void ChangelogReplay::Complete(Assembly& a, int64_t offset) {
  ChangelogChain& c = current_;
  if (a.kind == ChangelogKind::kSnapshot) {
    // A complete snapshot makes everything before it unnecessary.
    c.chain = a.chain, c.base_seq = a.seq, c.last_seq = a.seq;
    c.snapshot = std::move(a.parts);
    c.deltas.clear();
    c.gap.clear();
  } else if (c.chain == 0 || a.chain != c.chain || !c.gap.empty()) {
    c.ignored++;  // before any snapshot kept, another writer's, or past a gap
  } else if (a.seq != c.last_seq + 1) {
    c.gap = (a.seq > c.last_seq ? "after seq " + std::to_string(c.last_seq) + " comes seq "
                                : "seq " + std::to_string(a.seq) + " comes again after seq ") +
            std::to_string(a.seq > c.last_seq ? a.seq : c.last_seq) + " (offset " +
            std::to_string(offset) + ")";
  } else {
    std::string batch;
    for (const std::string& p : a.parts) batch += p;
    c.deltas.emplace_back(a.seq, std::move(batch));
    c.last_seq = a.seq;
  }
  a = Assembly{};
}

ChangelogChain ChangelogReplay::Finish() {
  if (assembling_.active) current_.ignored++;
  assembling_ = Assembly{};
  return std::move(current_);
}

}  // namespace faultline::stream
