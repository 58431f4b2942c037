#include "partition_store.h"

#include <rocksdb/db.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "faultline/common/varint.h"

namespace faultline::stream {
namespace {

constexpr uint64_t kFormat = 2;
constexpr std::string_view kFormatKey = "meta/format";
constexpr std::string_view kOffsetKey = "meta/offset";
constexpr std::string_view kMaxEventKey = "meta/max_event_ns";
constexpr std::string_view kWindowKey = "meta/window_s";
constexpr std::string_view kSeqKey = "meta/seq";
constexpr std::string_view kPeerFrontKey = "meta/peer_front";
constexpr std::string_view kChainKey = "meta/chain";
constexpr std::string_view kRestoringKey = "meta/restoring";
constexpr std::string_view kOpen = "o/";
constexpr std::string_view kClosed = "c/";
constexpr std::string_view kOutbox = "x/";
constexpr std::string_view kPeer = "p/";
constexpr std::string_view kEndpoint = "endpoint/";
constexpr std::string_view kListener = "listener/";
// Format 1: one record per series or peer.
constexpr std::string_view kOpenV1 = "open/";
constexpr std::string_view kClosedV1 = "closed/";
constexpr std::string_view kOutboxV1 = "outbox/";
constexpr std::string_view kPeerV1 = "peer/";

// Series per closed-window record, and bytes per peer record: values of a few hundred KiB.
constexpr size_t kClosedChunk = 2048;
constexpr size_t kPeerChunkBytes = 256 << 10;
constexpr size_t kWriteBufferBudget = 256 << 20;

void PutBe64(std::string* out, uint64_t u) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(u >> (56 - 8 * i)));
}
// Signed values sort with negatives first.
void PutTime(std::string* out, int64_t v) { PutBe64(out, static_cast<uint64_t>(v) ^ (1ULL << 63)); }
uint64_t GetBe64(std::string_view b) {
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<uint8_t>(b[i]);
  return u;
}
int64_t GetTime(std::string_view b) { return static_cast<int64_t>(GetBe64(b) ^ (1ULL << 63)); }

std::string Key(std::string_view prefix, int64_t start_s) {
  std::string k(prefix);
  PutTime(&k, start_s);
  return k;
}
std::string Key(std::string_view prefix, int64_t start_s, uint64_t n) {
  std::string k = Key(prefix, start_s);
  PutBe64(&k, n);
  return k;
}
std::string PeerKey(uint64_t first) {
  std::string k(kPeer);
  PutBe64(&k, first);
  return k;
}
std::string VarintValue(uint64_t v) {
  std::string s;
  PutVarint(&s, v);
  return s;
}
std::string_view View(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

Status RocksError(const std::string& path, const rocksdb::Status& s) {
  return Internal("partition state " + path + ": " + s.ToString());
}
Status Corrupt(const std::string& path, std::string_view what, std::string_view key) {
  std::string printable;
  for (char c : key.substr(0, 24))
    printable += (c >= 0x20 && c < 0x7f) ? c : '.';
  return Internal("partition state " + path + ": corrupt " + std::string(what) + " (record '" +
                  printable + "')");
}

// The chain record, written by a commit (Batch::Chain), by a claim (PartitionStore::SetChain)
// and by a restore that catches up across chains.
void PutChain(rocksdb::WriteBatch* batch, uint64_t chain) {
  batch->Put(std::string(kChainKey), VarintValue(chain));
}
Status WriteChain(const std::string& path, rocksdb::DB* db, uint64_t chain) {
  rocksdb::WriteBatch batch;
  PutChain(&batch, chain);
  rocksdb::Status s = db->Write({}, &batch);
  return s.ok() ? Status::Ok() : RocksError(path, s);
}

// A blob of series: varint count, then (key, stats) as length-prefixed bytes each.
template <typename Visit>
bool DecodeSeriesBlob(std::string_view blob, Visit&& visit) {
  ByteReader r(blob);
  uint64_t n = 0;
  if (!r.Varint(&n)) return false;
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view key, stats;
    if (!r.Bytes(&key) || !r.Bytes(&stats)) return false;
    if (!visit(key, stats)) return false;
  }
  return r.empty();
}
void AppendSeries(std::string* blob, std::string* scratch, std::string_view key,
                  const model::WindowStats& stats) {
  PutBytes(blob, key);
  scratch->clear();
  stats.EncodeTo(scratch);
  PutBytes(blob, *scratch);
}
// Puts a record whose value is the varint `n` followed by `body`, without copying `body` into a
// new string first (the batch copies the parts once).
void PutCounted(rocksdb::WriteBatch* batch, const std::string& key, uint64_t n,
                std::string_view body) {
  std::string count;
  PutVarint(&count, n);
  const rocksdb::Slice key_part(key), parts[] = {rocksdb::Slice(count),
                                                 rocksdb::Slice(body.data(), body.size())};
  batch->Put(rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(parts, 2));
}

bool Uint(rocksdb::DB* db, std::string_view key, uint64_t* v, bool* found) {
  std::string s;
  *found = db->Get({}, std::string(key), &s).ok();
  if (!*found) return true;
  ByteReader r(s);
  return r.Varint(v) && r.empty();
}
bool Uint(const std::unique_ptr<rocksdb::DB>& db, std::string_view key, uint64_t* v, bool* found) {
  return Uint(db.get(), key, v, found);
}

// Format 1 to 2: the same content, re-recorded, in one batch. Returns whether there was any.
Status ConvertFormat1(const std::string& path, rocksdb::DB* db, uint64_t* seq) {
  rocksdb::WriteBatch batch;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}));
  bool any = false;
  // Open and closed windows, by start: one record of each window's series.
  for (const auto& prefixes : {std::pair{kOpenV1, kOpen}, std::pair{kClosedV1, kClosed}}) {
    const std::string_view v1 = prefixes.first, v2 = prefixes.second;
    int64_t start = INT64_MIN;
    std::string body;
    uint64_t n = 0, chunk = 0;
    auto flush = [&] {
      if (n == 0) return;
      PutCounted(&batch, v2 == kOpen ? Key(kOpen, start, *seq) : Key(kClosed, start, chunk++), n,
                 body);
      body.clear();
      n = 0;
    };
    for (it->Seek(std::string(v1)); it->Valid() && it->key().starts_with(v1); it->Next()) {
      any = true;
      const std::string_view k = View(it->key()).substr(v1.size());
      if (k.size() < 8) return Corrupt(path, "window record", View(it->key()));
      if (GetTime(k) != start) {
        flush();
        chunk = 0;
        start = GetTime(k);
      } else if (v2 == kClosed && n == kClosedChunk) {
        flush();
      }
      PutBytes(&body, k.substr(8));
      PutBytes(&body, View(it->value()));
      n++;
    }
    flush();
  }
  // Outbox: one record per window listing its keys still to publish.
  std::map<int64_t, std::string> outbox;
  std::map<int64_t, uint64_t> outbox_n;
  for (it->Seek(std::string(kOutboxV1)); it->Valid() && it->key().starts_with(kOutboxV1);
       it->Next()) {
    any = true;
    const std::string_view k = View(it->key()).substr(kOutboxV1.size());
    if (k.size() < 8) return Corrupt(path, "outbox record", View(it->key()));
    PutBytes(&outbox[GetTime(k)], k.substr(8));
    outbox_n[GetTime(k)]++;
  }
  for (const auto& [start, keys] : outbox)
    PutCounted(&batch, Key(kOutbox, start), outbox_n[start], keys);
  std::string peers;
  for (it->Seek(std::string(kPeerV1)); it->Valid() && it->key().starts_with(kPeerV1); it->Next()) {
    any = true;
    const std::string_view value = View(it->value());
    if (value.size() < 8) return Corrupt(path, "peer record", View(it->key()));
    PutBytes(&peers, View(it->key()).substr(kPeerV1.size()));
    PutBytes(&peers, value.substr(8));
    PutVarint(&peers, ZigZag(GetTime(value)));
  }
  if (!peers.empty()) batch.Put(PeerKey(0), peers);
  if (!it->status().ok()) return RocksError(path, it->status());
  if (!any) return Status::Ok();
  for (std::string_view p : {kOpenV1, kClosedV1, kOutboxV1, kPeerV1}) {
    std::string end(p);
    end.back()++;
    batch.DeleteRange(std::string(p), end);
  }
  batch.Put(std::string(kSeqKey), VarintValue(*seq));
  rocksdb::Status s = db->Write({}, &batch);
  return s.ok() ? Status::Ok() : RocksError(path, s);
}

// Reads the outbox marker of `start`: all series of the closed window, or the listed keys.
Status ReadOutboxKeys(const std::string& path, std::string_view record,
                      std::string_view value, std::vector<std::string_view>* keys) {
  if (value.empty()) return Status::Ok();
  ByteReader r(value);
  uint64_t n = 0;
  if (!r.Varint(&n)) return Corrupt(path, "outbox record", record);
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view k;
    if (!r.Bytes(&k)) return Corrupt(path, "outbox record", record);
    keys->push_back(k);
  }
  return r.empty() ? Status::Ok() : Corrupt(path, "outbox record", record);
}

// Writes one changelog batch (its bytes as WriteBatch::Data() gave them) into `db`.
Status ApplyBatch(const std::string& path, rocksdb::DB* db, const std::string& rep,
                  std::string_view what, uint64_t seq) {
  auto refused = [&](const std::string& why) {
    return FailedPrecondition("partition state " + path + ": the changelog's " +
                              std::string(what) + " at seq " + std::to_string(seq) + why);
  };
  if (rep.size() < 12) return refused(" is not a write batch");
  rocksdb::WriteBatch batch(rep);
  rocksdb::Status s = db->Write({}, &batch);
  if (!s.ok()) return refused(" cannot be applied: " + s.ToString());
  return Status::Ok();
}

// Applies the changelog's deltas after seq `after`, in order.
Status ApplyDeltas(const std::string& path, rocksdb::DB* db, const ChangelogChain& log,
                   uint64_t after, RestoreReport* report) {
  for (const auto& [seq, rep] : log.deltas) {
    if (seq <= after) continue;
    FAULTLINE_RETURN_IF_ERROR(ApplyBatch(path, db, rep, "delta", seq));
    report->applied_bytes += rep.size();
    report->deltas++;
  }
  return Status::Ok();
}

// Brings the database up to what the changelog holds (see PartitionStore::Open). The changelog
// is written before the database, so the database is never legitimately ahead of it within one
// chain: a database ahead of everything the changelog holds means the changelog lost records
// (retention, a recreated topic), and the database is the better copy.
Status BringUpToChangelog(const std::string& path, rocksdb::DB* db, const ChangelogChain& log,
                          RestoreReport* report) {
  uint64_t local_seq = 0, local_chain = 0;
  bool has_seq = false, has_chain = false, restoring = false;
  if (!Uint(db, kSeqKey, &local_seq, &has_seq)) return Corrupt(path, "commit sequence", kSeqKey);
  if (!Uint(db, kChainKey, &local_chain, &has_chain)) return Corrupt(path, "chain", kChainKey);
  uint64_t unused = 0;
  if (!Uint(db, kRestoringKey, &unused, &restoring)) restoring = true;
  const bool present = has_seq && !restoring;
  report->local_seq = present ? local_seq : 0;
  report->base_seq = report->seq = report->local_seq;
  // Ahead of the changelog: it lost records, unless this database's writer lost the partition
  // (then its commits past the owner's are void).
  if (present && (log.chain == 0 || (local_seq > log.last_seq && !log.Fenced(local_chain)))) {
    report->source = RestoreReport::Source::kLocal;  // nothing newer there
    report->continues_chain = false;
    return Status::Ok();
  }
  if (log.chain == 0) {
    if (log.records == 0 && !restoring) return Status::Ok();  // a new partition
    return FailedPrecondition("partition state " + path + ": the changelog holds " +
                              std::to_string(log.records) +
                              " records but no complete snapshot to restore from (it lost "
                              "records: see its retention)");
  }
  if (!log.gap.empty()) {
    return FailedPrecondition("partition state " + path + ": the changelog of chain " +
                              std::to_string(log.chain) + " is not contiguous: " + log.gap +
                              "; restoring would lose the commits in between");
  }
  report->continues_chain = present && log.Holds(local_chain, local_seq);
  if (report->continues_chain) {
    report->source = local_seq == log.last_seq ? RestoreReport::Source::kLocal
                                                : RestoreReport::Source::kCaughtUp;
    FAULTLINE_RETURN_IF_ERROR(ApplyDeltas(path, db, log, local_seq, report));
    if (local_chain != log.chain) FAULTLINE_RETURN_IF_ERROR(WriteChain(path, db, log.chain));
    report->seq = log.last_seq;
    return Status::Ok();
  }
  // Rebuilt in place; the marker makes a restore cut short start over at the next open.
  report->source = RestoreReport::Source::kRebuilt;
  report->base_seq = log.base_seq;
  rocksdb::WriteBatch clear;
  clear.DeleteRange(std::string(), std::string("\xff"));
  clear.Put(std::string(kRestoringKey), VarintValue(1));
  rocksdb::Status s = db->Write({}, &clear);
  if (!s.ok()) return RocksError(path, s);
  for (const std::string& rep : log.snapshot) {
    if (rep.empty()) continue;  // the snapshot of an empty database
    FAULTLINE_RETURN_IF_ERROR(ApplyBatch(path, db, rep, "snapshot", log.base_seq));
    report->applied_bytes += rep.size();
  }
  FAULTLINE_RETURN_IF_ERROR(ApplyDeltas(path, db, log, log.base_seq, report));
  rocksdb::WriteBatch done;
  PutChain(&done, log.chain);
  done.Put(std::string(kSeqKey), VarintValue(log.last_seq));
  done.Delete(std::string(kRestoringKey));
  s = db->Write({}, &done);
  if (!s.ok()) return RocksError(path, s);
  report->seq = log.last_seq;
  return Status::Ok();
}

}  // namespace

PartitionStore::~PartitionStore() = default;

Result<std::unique_ptr<PartitionStore>> PartitionStore::Open(const std::string& path,
                                                             int64_t window_s,
                                                             std::shared_ptr<rocksdb::Cache> cache,
                                                             StoredState* state,
                                                             const ChangelogChain* changelog,
                                                             RestoreReport* report) {
  std::unique_ptr<PartitionStore> p(new PartitionStore());
  p->path_ = path;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return Internal("state dir " + std::filesystem::path(path).parent_path().string() + ": " + ec.message());
  rocksdb::Options ro;
  ro.create_if_missing = true;
  ro.max_open_files = 64;
  ro.keep_log_file_num = 2;
  // Bounded memory however many partitions a processor owns: small memtables (which also bound
  // the log replayed after a crash) under one process-wide budget.
  static const auto write_buffers =
      std::make_shared<rocksdb::WriteBufferManager>(kWriteBufferBudget);
  ro.write_buffer_size = 16 << 20;
  ro.max_write_buffer_number = 2;
  ro.write_buffer_manager = write_buffers;
  ro.max_total_wal_size = 64 << 20;
  if (cache) {
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = cache;
    ro.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(ro, path, &raw);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return Unavailable("partition state " + path + " is held by another process (" +
                         s.ToString() + ")");
    }
    return RocksError(path, s);
  }
  p->db_.reset(raw);
  const auto& db = p->db_;
  if (changelog) {
    RestoreReport unused;
    FAULTLINE_RETURN_IF_ERROR(
        BringUpToChangelog(path, raw, *changelog, report ? report : &unused));
  }

  uint64_t w = 0, format = 0, v = 0;
  bool found = false;
  if (!Uint(db, kWindowKey, &w, &found)) return Corrupt(path, "window length", kWindowKey);
  if (found && static_cast<int64_t>(w) != window_s) {
    return FailedPrecondition("partition state " + path + " holds " + std::to_string(w) +
                              " s windows, the configuration asks for " +
                              std::to_string(window_s) +
                              " s: use another --state-dir or the same window");
  }
  bool has_format = false;
  if (!Uint(db, kFormatKey, &format, &has_format)) return Corrupt(path, "format", kFormatKey);
  if (has_format && format != kFormat) {
    return FailedPrecondition("partition state " + path + " is in format " +
                              std::to_string(format) + ", this processor reads formats 1 and " +
                              std::to_string(kFormat) + ": use the processor that wrote it");
  }
  if (!Uint(db, kSeqKey, &p->seq_, &found)) return Corrupt(path, "commit sequence", kSeqKey);
  if (!Uint(db, kChainKey, &p->chain_, &found)) return Corrupt(path, "chain", kChainKey);
  if (!has_format) {
    FAULTLINE_RETURN_IF_ERROR(ConvertFormat1(path, raw, &p->seq_));
    rocksdb::WriteBatch meta;
    meta.Put(std::string(kFormatKey), VarintValue(kFormat));
    meta.Put(std::string(kWindowKey), VarintValue(static_cast<uint64_t>(window_s)));
    rocksdb::Status ws = db->Write({}, &meta);
    if (!ws.ok()) return RocksError(path, ws);
  }
  if (!Uint(db, kOffsetKey, &v, &found)) return Corrupt(path, "offset", kOffsetKey);
  if (found) state->next_offset = static_cast<int64_t>(v);
  if (!Uint(db, kMaxEventKey, &v, &found)) return Corrupt(path, "watermark", kMaxEventKey);
  if (found) state->max_event_ns = static_cast<int64_t>(v);

  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}));
  auto scan = [&](std::string_view prefix, auto&& each) -> Status {
    for (it->Seek(std::string(prefix)); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      FAULTLINE_RETURN_IF_ERROR(each(View(it->key()).substr(prefix.size()), View(it->value())));
    }
    return it->status().ok() ? Status::Ok() : RocksError(path, it->status());
  };
  // Open windows: per window, the last commit's record of each series.
  std::map<std::string, model::WindowStats, std::less<>> window;
  int64_t window_start = INT64_MIN;
  auto flush_window = [&] {
    for (auto& [key, stats] : window) state->open.push_back({window_start, key, std::move(stats)});
    window.clear();
  };
  FAULTLINE_RETURN_IF_ERROR(scan(kOpen, [&](std::string_view k, std::string_view value) -> Status {
    if (k.size() != 16) return Corrupt(path, "open window record", View(it->key()));
    if (GetTime(k) != window_start) {
      flush_window();
      window_start = GetTime(k);
    }
    bool ok = DecodeSeriesBlob(value, [&](std::string_view key, std::string_view stats) {
      auto decoded = model::WindowStats::Decode(stats);
      if (!decoded.ok()) return false;
      auto it = window.find(key);
      if (it == window.end()) it = window.try_emplace(std::string(key)).first;
      it->second = std::move(decoded).value();
      return true;
    });
    return ok ? Status::Ok() : Corrupt(path, "open window record", View(it->key()));
  }));
  flush_window();

  // The outbox: each marked window's series (all, or those listed) from its closed records.
  std::vector<std::pair<int64_t, std::string>> marks;
  FAULTLINE_RETURN_IF_ERROR(scan(kOutbox, [&](std::string_view k, std::string_view value) -> Status {
    if (k.size() != 8) return Corrupt(path, "outbox record", View(it->key()));
    marks.emplace_back(GetTime(k), std::string(value));
    return Status::Ok();
  }));
  for (const auto& mark : marks) {
    const int64_t start = mark.first;
    const std::string& value = mark.second;
    std::vector<std::string_view> wanted;
    FAULTLINE_RETURN_IF_ERROR(ReadOutboxKeys(path, Key(kOutbox, start), value, &wanted));
    std::sort(wanted.begin(), wanted.end());
    const std::string prefix = Key(kClosed, start);
    FAULTLINE_RETURN_IF_ERROR(scan(prefix, [&](std::string_view k, std::string_view blob) -> Status {
      bool ok = DecodeSeriesBlob(blob, [&](std::string_view key, std::string_view stats) {
        if (!value.empty() && !std::binary_search(wanted.begin(), wanted.end(), key)) return true;
        auto decoded = model::WindowStats::Decode(stats);
        if (!decoded.ok()) return false;
        state->outbox.push_back({start, std::string(key), std::move(decoded).value()});
        return true;
      });
      return ok ? Status::Ok() : Corrupt(path, "closed window record", View(it->key()));
    }));
  }
  FAULTLINE_RETURN_IF_ERROR(scan(kEndpoint, [&](std::string_view k, std::string_view) -> Status {
    const size_t sep = k.find('\0');
    if (sep != std::string_view::npos)
      state->endpoints.emplace_back(k.substr(0, sep), k.substr(sep + 1));
    return Status::Ok();
  }));
  FAULTLINE_RETURN_IF_ERROR(scan(kListener, [&](std::string_view k, std::string_view value) {
    state->listeners.emplace_back(k, value);
    return Status::Ok();
  }));
  if (!Uint(db, kPeerFrontKey, &state->peer_front, &found))
    return Corrupt(path, "peer front", kPeerFrontKey);
  FAULTLINE_RETURN_IF_ERROR(scan(kPeer, [&](std::string_view k, std::string_view value) -> Status {
    if (k.size() != 8) return Corrupt(path, "peer record", View(it->key()));
    uint64_t index = GetBe64(k);
    p->peer_blobs_.push_back(index);
    ByteReader r(value);
    for (; !r.empty(); ++index) {
      std::string_view key, service;
      uint64_t seen = 0;
      if (!r.Bytes(&key) || !r.Bytes(&service) || !r.Varint(&seen))
        return Corrupt(path, "peer record", View(it->key()));
      if (index >= state->peer_front)
        state->peers.push_back({index, std::string(key), std::string(service), UnZigZag(seen)});
    }
    return Status::Ok();
  }));
  return p;
}

PartitionStore::Batch::Batch(uint64_t seq)
    : seq_(seq), batch_(std::make_unique<rocksdb::WriteBatch>()) {}
PartitionStore::Batch::~Batch() = default;
PartitionStore::Batch::Batch(Batch&&) noexcept = default;

void PartitionStore::Batch::FlushOpen() {
  if (open_count_ == 0) return;
  PutCounted(batch_.get(), Key(kOpen, open_start_, seq_), open_count_, open_blob_);
  open_blob_.clear();
  open_count_ = 0;
}

void PartitionStore::Batch::OpenSeries(int64_t start_s, std::string_view key,
                                       const model::WindowStats& stats) {
  if (start_s != open_start_) {
    FlushOpen();
    open_start_ = start_s;
  }
  AppendSeries(&open_blob_, &scratch_, key, stats);
  open_count_++;
}

void PartitionStore::Batch::ClosedWindow(
    int64_t start_s, std::vector<std::pair<std::string_view, const model::WindowStats*>> series) {
  batch_->DeleteRange(Key(kOpen, start_s), Key(kOpen, start_s + 1));
  std::sort(series.begin(), series.end());
  std::string blob;
  for (size_t begin = 0, chunk = 0; begin < series.size(); begin += kClosedChunk, ++chunk) {
    const size_t end = std::min(series.size(), begin + kClosedChunk);
    blob.clear();
    PutVarint(&blob, end - begin);
    for (size_t i = begin; i < end; ++i)
      AppendSeries(&blob, &scratch_, series[i].first, *series[i].second);
    batch_->Put(Key(kClosed, start_s, chunk), blob);
  }
  if (!series.empty()) batch_->Put(Key(kOutbox, start_s), "");
}

void PartitionStore::Batch::Unpublished(int64_t start_s,
                                        const std::vector<std::string_view>& keys) {
  if (keys.empty()) {
    batch_->Delete(Key(kOutbox, start_s));
    return;
  }
  std::string value;
  PutVarint(&value, keys.size());
  for (std::string_view k : keys) PutBytes(&value, k);
  batch_->Put(Key(kOutbox, start_s), value);
}

void PartitionStore::Batch::Endpoint(std::string_view owner, std::string_view endpoint) {
  std::string k(kEndpoint);
  k.append(owner).push_back('\0');
  k.append(endpoint);
  batch_->Put(k, "");
}

void PartitionStore::Batch::Listener(std::string_view address_key, std::string_view service) {
  std::string k(kListener);
  k.append(address_key);
  batch_->Put(k, rocksdb::Slice(service.data(), service.size()));
}

void PartitionStore::Batch::FlushPeers() {
  if (peers_count_ == 0) return;
  const uint64_t first = peer_next_ - peers_count_;
  batch_->Put(PeerKey(first), peers_blob_);
  peer_blobs_.push_back(first);
  peers_blob_.clear();
  peers_count_ = 0;
}

void PartitionStore::Batch::Peers(uint64_t front, uint64_t first) {
  peers_ = true;
  peer_front_ = front;
  peer_next_ = first;
}

void PartitionStore::Batch::Peer(std::string_view key, std::string_view service, int64_t seen_s) {
  PutBytes(&peers_blob_, key);
  PutBytes(&peers_blob_, service);
  PutVarint(&peers_blob_, ZigZag(seen_s));
  peers_count_++;
  peer_next_++;
  if (peers_blob_.size() >= kPeerChunkBytes) FlushPeers();
}

void PartitionStore::Batch::Chain(uint64_t chain) {
  PutChain(batch_.get(), chain);
  chain_ = chain;
}

void PartitionStore::Batch::Position(int64_t next_offset, int64_t max_event_ns) {
  batch_->Put(std::string(kOffsetKey), VarintValue(static_cast<uint64_t>(next_offset)));
  batch_->Put(std::string(kMaxEventKey), VarintValue(static_cast<uint64_t>(max_event_ns)));
}

void PartitionStore::Batch::Expire(int64_t cutoff_s) {
  batch_->DeleteRange(Key(kClosed, INT64_MIN), Key(kClosed, cutoff_s));
  batch_->DeleteRange(Key(kOutbox, INT64_MIN), Key(kOutbox, cutoff_s));
}

bool PartitionStore::Batch::empty() const {
  return batch_->Count() == 0 && open_count_ == 0 && peers_count_ == 0;
}

Status PartitionStore::Commit(Batch& batch, bool sync) {
  if (batch.empty()) return Status::Ok();
  Seal(batch);
  return Write(batch, sync);
}

std::string_view PartitionStore::Seal(Batch& batch) {
  if (batch.sealed_) return batch.batch_->Data();
  batch.sealed_ = true;
  batch.FlushOpen();
  batch.FlushPeers();
  // Peer blobs wholly below the front go (a blob ends where the next one starts).
  std::vector<uint64_t> blobs;
  if (batch.peers_) {
    batch.batch_->Put(std::string(kPeerFrontKey), VarintValue(batch.peer_front_));
    blobs = peer_blobs_;
    blobs.insert(blobs.end(), batch.peer_blobs_.begin(), batch.peer_blobs_.end());
    size_t dead = 0;
    while (dead + 1 < blobs.size() && blobs[dead + 1] <= batch.peer_front_) dead++;
    if (dead + 1 == blobs.size() && batch.peer_next_ <= batch.peer_front_) dead++;
    if (dead > 0) {
      batch.batch_->DeleteRange(std::string(kPeer), dead < blobs.size()
                                                        ? PeerKey(blobs[dead])
                                                        : PeerKey(UINT64_MAX));
      blobs.erase(blobs.begin(), blobs.begin() + static_cast<std::ptrdiff_t>(dead));
    }
  }
  batch.batch_->Put(std::string(kSeqKey), VarintValue(batch.seq_));
  batch.blobs_after_ = std::move(blobs);
  return batch.batch_->Data();
}

Status PartitionStore::Write(Batch& batch, bool sync) {
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  rocksdb::Status s = db_->Write(wo, batch.batch_.get());
  if (!s.ok()) return RocksError(path_, s);
  seq_ = batch.seq_;
  if (batch.chain_) chain_ = batch.chain_;
  if (batch.peers_) peer_blobs_ = std::move(batch.blobs_after_);
  return Status::Ok();
}

Status PartitionStore::SetChain(uint64_t chain) {
  FAULTLINE_RETURN_IF_ERROR(WriteChain(path_, db_.get(), chain));
  chain_ = chain;
  return Status::Ok();
}

Status PartitionStore::Snapshot(size_t part_bytes,
                                const std::function<Status(std::string_view batch)>& each) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}));
  rocksdb::WriteBatch part;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    part.Put(it->key(), it->value());
    if (part.GetDataSize() >= part_bytes) {
      FAULTLINE_RETURN_IF_ERROR(each(part.Data()));
      part.Clear();
    }
  }
  if (!it->status().ok()) return RocksError(path_, it->status());
  if (part.Count() > 0) FAULTLINE_RETURN_IF_ERROR(each(part.Data()));
  return Status::Ok();
}

uint64_t PartitionStore::ApproximateBytes() const {
  uint64_t live = 0, mem = 0;
  db_->GetIntProperty("rocksdb.estimate-live-data-size", &live);
  db_->GetIntProperty("rocksdb.cur-size-all-mem-tables", &mem);
  return live + mem;
}

Status PartitionStore::ReadWindows(
    const std::string& path, bool include_open, int64_t* window_s,
    const std::function<void(int64_t, std::string_view, model::WindowStats, bool)>& visit) {
  rocksdb::Options ro;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(ro, path, &raw);
  if (!s.ok()) return RocksError(path, s);
  std::unique_ptr<rocksdb::DB> db(raw);
  uint64_t w = 0;
  bool found = false;
  if (window_s && Uint(db, kWindowKey, &w, &found) && found) *window_s = static_cast<int64_t>(w);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}));
  // Per window, the series by key (the last record wins for open ones), handed out in order.
  std::map<std::string, model::WindowStats> window;
  int64_t window_start = INT64_MIN;
  auto flush = [&](bool open) {
    for (auto& [key, stats] : window) visit(window_start, key, std::move(stats), open);
    window.clear();
  };
  for (bool open : {false, true}) {
    if (open && !include_open) break;
    // Both layouts: a directory not yet opened by this version is still in format 1.
    static constexpr std::string_view kClosedPrefixes[] = {kClosed, kClosedV1};
    static constexpr std::string_view kOpenPrefixes[] = {kOpen, kOpenV1};
    for (std::string_view prefix : open ? kOpenPrefixes : kClosedPrefixes) {
      const bool v1 = prefix == kOpenV1 || prefix == kClosedV1;
      for (it->Seek(std::string(prefix)); it->Valid() && it->key().starts_with(prefix);
           it->Next()) {
        const std::string_view k = View(it->key()).substr(prefix.size());
        if (k.size() < 8) return Corrupt(path, "window record", View(it->key()));
        if (GetTime(k) != window_start) {
          flush(open);
          window_start = GetTime(k);
        }
        auto put = [&](std::string_view key, std::string_view stats) {
          auto decoded = model::WindowStats::Decode(stats);
          if (!decoded.ok()) return false;
          window[std::string(key)] = std::move(decoded).value();
          return true;
        };
        const bool ok = v1 ? put(k.substr(8), View(it->value()))
                           : DecodeSeriesBlob(View(it->value()), put);
        if (!ok) return Corrupt(path, open ? "open window record" : "closed window record",
                                View(it->key()));
      }
      flush(open);
      window_start = INT64_MIN;
      if (!it->status().ok()) return RocksError(path, it->status());
    }
  }
  return Status::Ok();
}

}  // namespace faultline::stream
