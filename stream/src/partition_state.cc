#include "faultline/stream/partition_state.h"

#include <arpa/inet.h>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include <google/protobuf/arena.h>

#include "event_scope.h"
#include "events.pb.h"
#include "open_windows.h"
#include "partition_store.h"
#include "peer_table.h"
#include "faultline/common/varint.h"

namespace faultline::stream {
namespace {

constexpr int64_t kNsPerS = 1'000'000'000;


// A changelog record's parts: `parts` in order, the last one marked (one empty part for none).
std::vector<ChangelogRecord> Records(ChangelogKind kind, uint64_t epoch, uint64_t chain,
                                     uint64_t seq, const std::vector<std::string_view>& parts) {
  std::vector<ChangelogRecord> records;
  records.reserve(std::max<size_t>(1, parts.size()));
  for (size_t i = 0; i < parts.size(); ++i)
    records.push_back({kind, chain, seq, i, i + 1 == parts.size(), parts[i], epoch});
  if (parts.empty()) records.push_back({kind, chain, seq, 0, true, {}, epoch});
  return records;
}
// `bytes` cut into pieces of at most `size`.
std::vector<std::string_view> Parts(std::string_view bytes, size_t size) {
  std::vector<std::string_view> parts;
  for (size_t at = 0; at < bytes.size(); at += size) parts.push_back(bytes.substr(at, size));
  return parts;
}


}  // namespace

// A commit between BeginCommit and FinishCommit: its batch, its retention cutoff, and its
// delivery to the changelog (none without one).
struct PartitionState::Committing {
  PartitionStore::Batch batch;
  int64_t cutoff = 0;
  std::unique_ptr<ChangelogLink::Delivery> delivery;
};


PartitionState::PartitionState()
    : open_(std::make_unique<OpenWindows>()),
      sigs_(std::make_unique<SigCache>()),
      learned_(std::make_unique<Learned>()) {}
PartitionState::~PartitionState() = default;

Result<std::unique_ptr<PartitionState>> PartitionState::Open(
    const std::string& state_dir, const std::string& topic, int32_t partition,
    const WindowOptions& options, const EntityNamer& namer, std::shared_ptr<rocksdb::Cache> cache,
    const ChangelogOptions& changelog) {
  std::unique_ptr<PartitionState> p(new PartitionState());
  p->partition_ = partition;
  p->options_ = options;
  p->namer_ = &namer;
  p->changelog_ = changelog;
  const std::string name = topic + "-" + std::to_string(partition);
  StoredState stored;
  const auto t0 = std::chrono::steady_clock::now();
  ChangelogChain chain;
  if (changelog.link) {
    // Read before the database is opened: the changelog is written first, so whatever it holds
    // now is at least what the previous owner's database holds, unless that owner still commits
    // (then the database is ahead, and kept).
    ChangelogReplay replay(name);
    FAULTLINE_RETURN_IF_ERROR(changelog.link->Read(
        partition, [&](int64_t at, std::string_view value) { return replay.Add(at, value); }));
    chain = replay.Finish();
  }
  RestoreReport report;
  FAULTLINE_ASSIGN_OR_RETURN(
      p->store_, PartitionStore::Open(state_dir + "/" + name, options.window_s, std::move(cache),
                                      &stored, changelog.link ? &chain : nullptr, &report));
  if (changelog.link) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ChangelogCounters& c = p->changelog_counters_;
    c.restore_seconds += secs;
    ChangelogOpen& o = p->changelog_open_;
    const char* source = "local";
    if (report.source != RestoreReport::Source::kLocal) {
      c.restores++;
      c.restored_bytes += report.applied_bytes;
      const bool rebuilt = report.source == RestoreReport::Source::kRebuilt;
      source = rebuilt ? "rebuilt" : "caught up";
      o.source = rebuilt ? ChangelogOpen::Source::kRebuilt : ChangelogOpen::Source::kCaughtUp;
    }
    c.fenced += chain.fenced;
    p->snapshot_due_ = !report.continues_chain;
    FAULTLINE_RETURN_IF_ERROR(p->Claim(chain.max_epoch));
    o.from_seq = report.base_seq, o.deltas = report.deltas, o.seq = report.seq;
    o.epoch = p->epoch_, o.chain = p->chain_;
    p->restore_summary_ =
        std::string(source) + " from seq " + std::to_string(report.local_seq) + " to " +
        std::to_string(report.seq) + " (" + std::to_string(report.applied_bytes) +
        " bytes applied; the changelog had " + std::to_string(chain.records) + " records, " +
        std::to_string(chain.bytes) + " bytes, " + std::to_string(chain.ignored) + " ignored, " +
        std::to_string(chain.fenced) + " fenced) in " +
        std::to_string(static_cast<int64_t>(secs * 1000)) + " ms; claimed epoch " +
        std::to_string(p->epoch_);
  }
  p->next_offset_ = stored.next_offset;
  p->max_event_ns_ = stored.max_event_ns;
  for (auto& w : stored.open) p->open_->Restore(w.start_s, w.key, std::move(w.stats));
  for (auto& w : stored.outbox)
    p->outbox_[{w.start_s, std::move(w.key)}] = OutboxEntry{std::move(w.stats), false};
  for (const auto& [owner, endpoint] : stored.endpoints) {
    std::string k = owner;
    k.push_back('\0');
    k.append(endpoint);
    if (p->learned_->endpoints.insert(std::move(k)).second) p->learned_->endpoint_counts[owner]++;
  }
  for (auto& [address, service] : stored.listeners)
    p->learned_->listeners[address] = std::move(service);
  p->peers_ = std::make_unique<PeerTable>(options.max_peers);
  for (const auto& peer : stored.peers) {
    if (!p->peers_->Restore(stored.peer_front, peer.index, peer.key, peer.service, peer.seen_s))
      return Internal("partition state " + state_dir + "/" + topic + "-" +
                      std::to_string(partition) + ": peer record " + std::to_string(peer.index) +
                      " is out of sequence");
  }
  p->peers_committed_ = p->peers_->end();
  return p;
}

std::vector<PartitionState::Opened> PartitionState::OpenAll(
    const std::vector<int32_t>& partitions,
    const std::function<Result<std::unique_ptr<PartitionState>>(int32_t)>& open,
    size_t threads) {
  std::vector<Opened> out;
  out.reserve(partitions.size());
  for (size_t i = 0; i < partitions.size(); ++i)
    out.push_back({Internal("partition " + std::to_string(partitions[i]) + ": not opened"), 0});
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, partitions.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < partitions.size();) {
      const auto t0 = std::chrono::steady_clock::now();
      out[i].state = open(partitions[i]);
      out[i].open_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  return out;
}

int64_t PartitionState::watermark_s() const {
  return max_event_ns_ / kNsPerS - options_.allowed_lateness_s;
}

size_t PartitionState::open_series() const { return open_->size(); }

uint64_t PartitionState::ApproximateBytes() const { return store_->ApproximateBytes(); }

model::WindowStats* PartitionState::Series(int64_t window_start_s, std::string_view encoded_key) {
  return open_->At(window_start_s, open_->Intern(encoded_key));
}

std::string_view PartitionState::EndpointFor(std::string_view owner, std::string_view endpoint) {
  std::string& key = endpoint_probe_;
  key.assign(owner).push_back('\0');
  key.append(endpoint);
  if (learned_->endpoints.contains(Learned::View(key))) return endpoint;
  size_t& count = learned_->endpoint_counts[Learned::View(owner)];
  if (count >= options_.max_endpoints_per_service) return "other";
  count++;
  learned_->endpoints.insert(key);
  new_endpoints_.emplace_back(owner, endpoint);
  return endpoint;
}




void PartitionState::Apply(std::string_view payload, int64_t offset, int64_t message_time_ms,
                           ApplyCounters* counters) {
  counters->messages++;
  next_offset_ = offset + 1;
  meta_dirty_ = true;
  // The batch lives in an arena over a reused block: no malloc per field, one release per batch.
  if (arena_block_.empty()) arena_block_.resize(256 << 10);
  google::protobuf::ArenaOptions arena_options;
  arena_options.initial_block = arena_block_.data();
  arena_options.initial_block_size = arena_block_.size();
  google::protobuf::Arena arena(arena_options);
  v1::EventBatch& batch = *google::protobuf::Arena::CreateMessage<v1::EventBatch>(&arena);
  if (!batch.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    counters->undecodable++;
    return;
  }
  if (sigs_->targets.size() > SigCache::kMaxSignatures || sigs_->who.size() > SigCache::kMaxSignatures)
    sigs_->Clear();
  const std::string& machine = batch.node().name();
  std::vector<ProcessNames> names;
  names.reserve(static_cast<size_t>(batch.processes_size()) + 1);
  auto names_of = [&](uint32_t pid) -> const ProcessNames& {
    for (const ProcessNames& n : names) {
      if (n.pid == pid) return n;
    }
    const v1::ProcessIdentity* proc = nullptr;
    for (const auto& p : batch.processes()) {
      if (p.pid() == pid) proc = &p;
    }
    ProcessNames& n = names.emplace_back(ProcessNames{
        pid, namer_->Service(proc, pid, machine), namer_->Instance(proc, pid, machine),
        proc ? ContainerName(machine, proc->cgroup_path(), proc->container_id(),
                             proc->has_container() ? &proc->container() : nullptr)
             : std::string(),
        0});
    std::string who_key = machine;
    for (const std::string* part : {&n.service, &n.instance, &n.container}) {
      who_key.push_back('\0');
      who_key.append(*part);
    }
    n.who = sigs_->who.try_emplace(std::move(who_key), static_cast<uint32_t>(sigs_->who.size()))
                .first->second;
    return n;
  };
  const int64_t window_ns = options_.window_s * kNsPerS;
  const int64_t lateness_ns = options_.allowed_lateness_s * kNsPerS;
  EventScratch scratch;
  for (const v1::Event& ev : batch.events()) {
    counters->events++;
    const int64_t t_ns = static_cast<int64_t>(std::min<uint64_t>(ev.time_unix_ns(), INT64_MAX / 2));
    if (message_time_ms >= 0 && t_ns / 1'000'000 > message_time_ms + options_.max_future_s * 1000) {
      counters->future++;
      continue;
    }
    const int64_t start_ns = t_ns - t_ns % window_ns;
    if (start_ns + window_ns <= max_event_ns_ - lateness_ns) {
      counters->late++;
      continue;
    }
    max_event_ns_ = std::max(max_event_ns_, t_ns);
    // An event type newer than this processor has no handler: counted in events, nothing added.
    const EventHandler handler = HandlerFor(ev.kind_case());
    if (!handler) continue;
    EventScope scope{*this, counters, machine, names_of(ev.pid()), ev, start_ns / kNsPerS, scratch};
    handler(scope);
  }
  CloseWindows(counters);
}

void PartitionState::CloseWindows(ApplyCounters* counters) {
  const int64_t horizon_ns = max_event_ns_ - options_.allowed_lateness_s * kNsPerS;
  bool closed_any = false;
  while (open_->oldest_start() != INT64_MAX &&
         (open_->oldest_start() + options_.window_s) * kNsPerS <= horizon_ns) {
    ClosedWindow& closed = closed_since_commit_.emplace_back();
    closed.start_s = open_->oldest_start();
    open_->CloseOldest([&](std::string_view key, model::WindowStats&& stats) {
      closed.series.emplace_back(key, std::move(stats));
    });
    counters->windows_closed += closed.series.size();
    closed_any = true;
  }
  // Series no longer open may be forgotten: signatures then name ids that are gone.
  if (closed_any && open_->Compact()) sigs_->Clear();
}

Status PartitionState::Commit() {
  FAULTLINE_RETURN_IF_ERROR(BeginCommit());
  return FinishCommit();
}

Status PartitionState::BeginCommit() {
  assert(!committing_ && "BeginCommit twice without FinishCommit");
  auto owned = std::make_unique<Committing>(Committing{store_->NewBatch(), 0, nullptr});
  PartitionStore::Batch& batch = owned->batch;
  open_->ForEachChanged([&](int64_t start, std::string_view key, const model::WindowStats& stats) {
    batch.OpenSeries(start, key, stats);
  });
  for (const ClosedWindow& w : closed_since_commit_) {
    std::vector<std::pair<std::string_view, const model::WindowStats*>> series;
    series.reserve(w.series.size());
    for (const auto& [key, stats] : w.series) series.emplace_back(key, &stats);
    batch.ClosedWindow(w.start_s, std::move(series));
  }
  // Windows some of whose series were delivered: what of them is still to publish.
  std::sort(published_.begin(), published_.end());
  for (size_t i = 0; i < published_.size();) {
    const int64_t start = published_[i].first;
    size_t end = i;
    while (end < published_.size() && published_[end].first == start) ++end;
    std::vector<std::string_view> pending;
    for (auto it = outbox_.lower_bound({start, std::string()});
         it != outbox_.end() && it->first.first == start; ++it) {
      if (!std::binary_search(published_.begin() + static_cast<std::ptrdiff_t>(i),
                              published_.begin() + static_cast<std::ptrdiff_t>(end), it->first))
        pending.push_back(it->first.second);
    }
    batch.Unpublished(start, pending);
    i = end;
  }
  for (const auto& [owner, endpoint] : new_endpoints_) batch.Endpoint(owner, endpoint);
  for (const auto& [listener, service] : new_listeners_) batch.Listener(listener, service);
  if (peers_->end() > peers_committed_) {
    const uint64_t first = std::max(peers_committed_, peers_->front());
    batch.Peers(peers_->front(), first);
    peers_->ForEachRecord(first, [&](std::string_view key, std::string_view service,
                                     int64_t seen_s) { batch.Peer(key, service, seen_s); });
  }
  if (meta_dirty_) batch.Position(next_offset_, max_event_ns_);
  // History and undelivered outbox entries beyond retention.
  const int64_t cutoff = watermark_s() - options_.retention_s;
  if (max_event_ns_ > 0 && cutoff > 0) batch.Expire(cutoff);
  if (batch.empty()) return Status::Ok();
  if (changelog_.link) {
    FAULTLINE_RETURN_IF_ERROR(SnapshotIfDue());
    // The database's chain is that of the record that made its state: from this delta on, ours.
    if (store_->chain() != chain_) batch.Chain(chain_);
    const std::string_view rep = store_->Seal(batch);
    owned->delivery = changelog_.link->Send(
        partition_, Records(ChangelogKind::kDelta, epoch_, chain_, store_->seq() + 1,
                            Parts(rep, changelog_.part_bytes)));
  }
  owned->cutoff = cutoff;
  committing_ = std::move(owned);
  return Status::Ok();
}

Status PartitionState::FinishCommit() {
  if (!committing_) return Status::Ok();
  const std::unique_ptr<Committing> committing = std::move(committing_);
  PartitionStore::Batch& batch = committing->batch;
  const int64_t cutoff = committing->cutoff;
  if (committing->delivery) {
    // The changelog may hold this seq even so (a delivery that failed late): the retry's delta
    // of the same seq must follow a snapshot, which makes the earlier one void. Likewise when
    // the local write below fails after the changelog took it.
    if (Status st = committing->delivery->Wait(); !st.ok()) {
      snapshot_due_ = true;
      return st;
    }
    const uint64_t bytes = store_->Seal(batch).size();
    changelog_counters_.delta_bytes += bytes;
    commits_since_snapshot_++;
    bytes_since_snapshot_ += bytes;
  }
  if (Status st = store_->Commit(batch, options_.sync_commits); !st.ok()) {
    snapshot_due_ = changelog_.link != nullptr;
    return st;
  }

  // Durable: now the in-memory view follows.
  open_->ClearChanged();
  for (ClosedWindow& w : closed_since_commit_) {
    for (auto& [key, stats] : w.series)
      outbox_[{w.start_s, std::move(key)}] = OutboxEntry{std::move(stats), false};
  }
  closed_since_commit_.clear();
  for (const auto& k : published_) outbox_.erase(k);
  published_.clear();
  if (cutoff > 0) {
    for (auto it = outbox_.begin(); it != outbox_.end() && it->first.first < cutoff;) {
      outbox_expired_++;
      it = outbox_.erase(it);
    }
  }
  new_endpoints_.clear();
  new_listeners_.clear();
  peers_committed_ = peers_->end();
  meta_dirty_ = false;
  return Status::Ok();
}

Status PartitionState::Claim(uint64_t max_epoch) {
  // Before anything is committed, so that from the claim on every earlier writer's records are
  // fenced. The chain is this writer's own, never one that wrote before.
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  do chain_ = rng() >> 1;
  while (chain_ == 0 || chain_ == store_->chain());
  epoch_ = max_epoch + 1;
  ChangelogRecord claim;
  claim.kind = ChangelogKind::kClaim;
  claim.epoch = epoch_, claim.chain = chain_;
  claim.seq = store_->seq(), claim.base_chain = store_->chain();
  return changelog_.link->Write(partition_, {claim});
}

Status PartitionState::SnapshotIfDue() {
  const bool due = snapshot_due_ || commits_since_snapshot_ >= changelog_.snapshot_commits ||
                   bytes_since_snapshot_ >= std::max(changelog_.snapshot_bytes,
                                                     last_snapshot_bytes_);
  if (!due) return Status::Ok();
  std::vector<std::string> batches;
  FAULTLINE_RETURN_IF_ERROR(store_->Snapshot(changelog_.part_bytes, [&](std::string_view b) {
    batches.emplace_back(b);
    return Status::Ok();
  }));
  const std::vector<std::string_view> parts(batches.begin(), batches.end());
  FAULTLINE_RETURN_IF_ERROR(changelog_.link->Write(
      partition_, Records(ChangelogKind::kSnapshot, epoch_, chain_, store_->seq(), parts)));
  if (chain_ != store_->chain()) FAULTLINE_RETURN_IF_ERROR(store_->SetChain(chain_));
  uint64_t bytes = 0;
  for (const std::string& b : batches) bytes += b.size();
  snapshot_due_ = false;
  commits_since_snapshot_ = 0;
  bytes_since_snapshot_ = 0;
  last_snapshot_bytes_ = bytes;
  changelog_counters_.snapshots++;
  changelog_counters_.snapshot_bytes += bytes;
  return Status::Ok();
}

std::vector<model::StoredWindow> PartitionState::TakeOutbox() {
  std::vector<model::StoredWindow> out;
  for (auto& [k, entry] : outbox_) {
    if (entry.handed_out) continue;
    entry.handed_out = true;
    auto key = model::SeriesKey::Decode(k.second);
    if (key.ok())
      out.push_back(model::StoredWindow{k.first, std::move(key).value(), entry.stats, false, {}});
  }
  return out;
}

std::vector<model::StoredWindow> PartitionState::PeekOutbox() const {
  std::vector<model::StoredWindow> out;
  for (const auto& [k, entry] : outbox_) {
    if (entry.handed_out) continue;
    auto key = model::SeriesKey::Decode(k.second);
    if (key.ok())
      out.push_back(model::StoredWindow{k.first, std::move(key).value(), entry.stats, false, {}});
  }
  return out;
}

void PartitionState::Published(int64_t start_s, const model::SeriesKey& key) {
  published_.emplace_back(start_s, key.Encode());
}

Result<std::vector<model::StoredWindow>> PartitionState::ReadWindows(const std::string& partition_dir,
                                                              bool include_open,
                                                              int64_t* window_s) {
  std::vector<model::StoredWindow> out;
  Status bad_key;
  FAULTLINE_RETURN_IF_ERROR(PartitionStore::ReadWindows(
      partition_dir, include_open, window_s,
      [&](int64_t start_s, std::string_view encoded, model::WindowStats stats, bool open) {
        auto key = model::SeriesKey::Decode(encoded);
        if (!key.ok()) {
          if (bad_key.ok()) bad_key = key.status();
          return;
        }
        out.push_back(model::StoredWindow{start_s, std::move(key).value(), std::move(stats), open, {}});
      }));
  if (!bad_key.ok()) return Internal("partition state " + partition_dir + ": " + bad_key.message());
  return out;
}

}  // namespace faultline::stream
