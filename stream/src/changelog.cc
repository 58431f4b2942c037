#include "faultline/stream/changelog.h"

#include <algorithm>

#include "faultline/common/varint.h"

namespace faultline::stream {
namespace {

constexpr std::string_view kMagic = "FLC2";
constexpr std::string_view kMagicV1 = "FLC1";  // before epochs: read as epoch 0

}  // namespace

std::string EncodeChangelogRecord(const ChangelogRecord& r) {
  std::string out(kMagic);
  out.reserve(kMagic.size() + 48 + r.body.size());
  out.push_back(static_cast<char>(r.kind));
  PutVarint(&out, r.epoch);
  PutVarint(&out, r.chain);
  PutVarint(&out, r.seq);
  PutVarint(&out, r.part);
  out.push_back(r.last ? 1 : 0);
  if (r.kind == ChangelogKind::kClaim) {
    PutVarint(&out, r.base_chain);
  } else {
    out.append(r.body);
  }
  return out;
}

Result<ChangelogRecord> DecodeChangelogRecord(std::string_view bytes) {
  const bool v1 = bytes.starts_with(kMagicV1);
  if (!v1 && !bytes.starts_with(kMagic))
    return InvalidArgument("changelog record: expected the magic 'FLC2' (or 'FLC1') at its start");
  bytes.remove_prefix(kMagic.size());
  if (bytes.empty()) return InvalidArgument("changelog record: no kind");
  const auto kind = static_cast<uint8_t>(bytes[0]);
  if (kind != 1 && kind != 2 && (v1 || kind != 3)) {
    return InvalidArgument("changelog record: kind " + std::to_string(kind) +
                           (v1 ? ", expected 1 (delta) or 2 (snapshot)"
                               : ", expected 1 (delta), 2 (snapshot) or 3 (claim)"));
  }
  ChangelogRecord out;
  out.kind = static_cast<ChangelogKind>(kind);
  ByteReader r(bytes.substr(1));
  if (!v1 && !r.Varint(&out.epoch)) return InvalidArgument("changelog record: truncated epoch");
  if (!r.Varint(&out.chain) || !r.Varint(&out.seq) || !r.Varint(&out.part))
    return InvalidArgument("changelog record: truncated chain, seq or part");
  const std::string_view tail = bytes.substr(bytes.size() - r.remaining());
  if (tail.empty() || (tail[0] != 0 && tail[0] != 1))
    return InvalidArgument("changelog record: expected a last-part flag 0 or 1");
  if (out.chain == 0) return InvalidArgument("changelog record: chain 0 (no writer)");
  out.last = tail[0] == 1;
  if (out.kind != ChangelogKind::kClaim) {
    out.body = tail.substr(1);
    return out;
  }
  if (out.epoch == 0) return InvalidArgument("changelog record: a claim at epoch 0");
  if (out.part != 0 || !out.last)
    return InvalidArgument("changelog record: a claim of part " + std::to_string(out.part) +
                           (out.last ? "" : ", not the last") + ", expected one part");
  ByteReader base(tail.substr(1));
  if (!base.Varint(&out.base_chain) || !base.empty())
    return InvalidArgument("changelog record: a claim's base chain is not one varint");
  return out;
}

bool ChangelogChain::Holds(uint64_t of_chain, uint64_t seq) const {
  if (chain == 0) return false;
  for (size_t i = writers.size(); i-- > 0;) {
    const uint64_t end = i + 1 < writers.size() ? writers[i + 1].second : last_seq;
    if (writers[i].first == of_chain && writers[i].second <= seq && seq <= end) return true;
  }
  return false;
}

bool ChangelogChain::Fenced(uint64_t of_chain) const {
  return std::binary_search(fenced_chains.begin(), fenced_chains.end(), of_chain);
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
  current_.max_epoch = std::max(current_.max_epoch, r.epoch);
  if (r.kind == ChangelogKind::kClaim) {
    Claim(r);
    return Status::Ok();
  }
  auto it = assembling_.find(r.chain);
  const bool continues = it != assembling_.end() && it->second.kind == r.kind &&
                         it->second.epoch == r.epoch && it->second.seq == r.seq &&
                         it->second.next_part == r.part;
  if (!continues) {
    // A record cut short (its writer failed mid-way) is never complete: drop what was gathered.
    if (it != assembling_.end()) {
      current_.ignored++;
      assembling_.erase(it);
    }
    if (r.part != 0) {
      current_.ignored++;
      return Status::Ok();
    }
    it = assembling_.emplace(r.chain, Assembly{r.kind, r.epoch, r.seq, 0, {}}).first;
  }
  Assembly& a = it->second;
  a.parts.emplace_back(r.body);
  a.next_part++;
  if (r.last) {
    Complete(r.chain, a, offset);
    assembling_.erase(it);
  }
  return Status::Ok();
}

bool ChangelogReplay::IsFenced(uint64_t epoch, uint64_t chain) const {
  return epoch < current_.epoch || (epoch > 0 && epoch == current_.epoch && chain != owner_);
}

void ChangelogReplay::Fence(uint64_t chain) {
  current_.fenced++;
  auto& f = current_.fenced_chains;
  const auto at = std::lower_bound(f.begin(), f.end(), chain);
  if (at == f.end() || *at != chain) f.insert(at, chain);
}

void ChangelogReplay::Claim(const ChangelogRecord& claim) {
  ChangelogChain& c = current_;
  if (IsFenced(claim.epoch, claim.chain)) {
    Fence(claim.chain);  // a claim of an epoch already taken: its writer lost
    return;
  }
  if (claim.epoch == c.epoch) return;  // the owner's own claim again (a retried delivery)
  c.epoch = claim.epoch;
  owner_ = claim.chain;
  // The claimer's deltas continue its base: what the changelog holds after it (the previous
  // owner's commits between the claimer's read and its claim) is not in the claimer's state.
  for (size_t i = c.writers.size(); i-- > 0;) {
    const uint64_t end = i + 1 < c.writers.size() ? c.writers[i + 1].second : c.last_seq;
    if (c.chain == 0 || c.writers[i].first != claim.base_chain || c.writers[i].second > claim.seq ||
        claim.seq > end)
      continue;
    const size_t keep = static_cast<size_t>(claim.seq - c.base_seq);
    for (size_t d = keep; d < c.deltas.size(); ++d) Fence(delta_chains_[d]);
    c.deltas.resize(keep);
    delta_chains_.resize(keep);
    c.last_seq = claim.seq;
    c.chain = keep == 0 ? c.writers.front().first : delta_chains_.back();
    c.gap.clear();
    c.writers.resize(i + 1);
    c.writers.emplace_back(claim.chain, claim.seq);
    return;
  }
  // Not on this state: the claimer writes a snapshot before any delta (else its deltas are a
  // gap, below).
}

void ChangelogReplay::Complete(uint64_t chain, Assembly& a, int64_t offset) {
  ChangelogChain& c = current_;
  if (IsFenced(a.epoch, chain)) {
    Fence(chain);
    return;
  }
  if (a.epoch > c.epoch) {
    // A writer whose claim is gone (retention dropped it): its records claim for it.
    c.epoch = a.epoch;
    owner_ = chain;
  }
  const uint64_t head = c.writers.empty() ? 0 : c.writers.back().first;
  if (a.kind == ChangelogKind::kSnapshot) {
    // A complete snapshot makes everything before it unnecessary.
    c.chain = chain, c.base_seq = a.seq, c.last_seq = a.seq;
    c.snapshot = std::move(a.parts);
    c.deltas.clear();
    delta_chains_.clear();
    c.writers.assign(1, {chain, a.seq});
    c.gap.clear();
  } else if (c.chain == 0 || !c.gap.empty() || (chain != head && a.epoch == 0)) {
    c.ignored++;  // before any snapshot kept, past a gap, or another writer's (before epochs)
  } else if (chain != head) {
    c.gap = "the delta of seq " + std::to_string(a.seq) + " (offset " + std::to_string(offset) +
            ") of the owner at epoch " + std::to_string(a.epoch) +
            " does not continue the state kept (seq " + std::to_string(c.last_seq) + ")";
  } else if (a.seq != c.last_seq + 1) {
    c.gap = (a.seq > c.last_seq ? "after seq " + std::to_string(c.last_seq) + " comes seq "
                                : "seq " + std::to_string(a.seq) + " comes again after seq ") +
            std::to_string(a.seq > c.last_seq ? a.seq : c.last_seq) + " (offset " +
            std::to_string(offset) + ")";
  } else {
    std::string batch;
    for (const std::string& p : a.parts) batch += p;
    c.deltas.emplace_back(a.seq, std::move(batch));
    delta_chains_.push_back(chain);
    c.chain = chain;
    c.last_seq = a.seq;
  }
}

ChangelogChain ChangelogReplay::Finish() {
  current_.ignored += assembling_.size();
  assembling_.clear();
  return std::move(current_);
}

}  // namespace faultline::stream
