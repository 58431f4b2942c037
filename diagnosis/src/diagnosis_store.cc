#include "diagnosis_store.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "faultline/diagnosis/live_runtime.h"

namespace faultline::diagnosis {
namespace {

constexpr std::string_view kOffsetPrefix = "o|";
constexpr std::string_view kOutboxPrefix = "x|";
constexpr std::string_view kOutboxSeqKey = "m|outbox_seq";

std::string DbPath(const std::string& state_dir) { return state_dir + "/diagnosis"; }

}  // namespace

std::string EncodeOutboxEntry(const OutboxEntry& e) {
  return nlohmann::json{{"incident_id", e.incident_id}, {"webhook_id", e.webhook_id},
                        {"status", e.status},           {"dedup_key", e.dedup_key},
                        {"time", e.time},               {"sequence", e.sequence},
                        {"body", e.body},               {"created_s", e.created_s}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // names may not be UTF-8
}

Result<OutboxEntry> DecodeOutboxEntry(const std::string& key, const std::string& value) {
  const nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("body") || !j["body"].is_string())
    return InvalidArgument("diagnosis state: outbox entry " + key + ": malformed");
  OutboxEntry e;
  e.key = key;
  e.incident_id = j.value("incident_id", "");
  e.webhook_id = j.value("webhook_id", "");
  e.status = j.value("status", "");
  e.dedup_key = j.value("dedup_key", "");
  e.time = j.value("time", "");
  e.sequence = j.value("sequence", uint64_t{0});
  e.body = j["body"].get<std::string>();
  e.created_s = j.value("created_s", int64_t{0});
  return e;
}

std::string OutboxKey(const std::string& sink, uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llu", static_cast<unsigned long long>(seq));
  return std::string(kOutboxPrefix) + sink + "|" + buf;
}

std::string OutboxSink(const std::string& key) {
  return key.substr(kOutboxPrefix.size(), key.rfind('|') - kOutboxPrefix.size());
}

Result<std::unique_ptr<DiagnosisStore>> DiagnosisStore::Open(const std::string& state_dir,
                                                             StoredDiagnosis* stored) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  std::unique_ptr<DiagnosisStore> store(new DiagnosisStore());
  store->path_ = DbPath(state_dir);
  rocksdb::Options dbo;
  dbo.create_if_missing = true;
  dbo.max_open_files = 256;
  rocksdb::DB* raw = nullptr;
  if (rocksdb::Status s = rocksdb::DB::Open(dbo, store->path_, &raw); !s.ok())
    return Unavailable("diagnosis state " + store->path_ + ": " + s.ToString());
  store->db_.reset(raw);
  std::unique_ptr<rocksdb::Iterator> it(store->db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string k = it->key().ToString(), v = it->value().ToString();
    if (k.starts_with(kOffsetPrefix)) {
      stored->offsets[static_cast<int32_t>(std::strtol(k.c_str() + kOffsetPrefix.size(), nullptr, 10))] =
          std::strtoll(v.c_str(), nullptr, 10);
    } else if (k == kOutboxSeqKey) {
      stored->outbox_seq = std::strtoull(v.c_str(), nullptr, 10);
    } else if (k.starts_with(kOutboxPrefix)) {
      FAULTLINE_ASSIGN_OR_RETURN(OutboxEntry e, DecodeOutboxEntry(k, v));
      stored->outbox.push_back(std::move(e));
    } else {
      stored->live.emplace_back(std::move(k), std::move(v));
    }
  }
  return store;
}

DiagnosisStore::~DiagnosisStore() = default;

Status DiagnosisStore::Commit(const std::vector<LiveDiagnosis::Change>& live,
                              const std::map<int32_t, int64_t>& offsets,
                              const std::vector<OutboxEntry>& added,
                              const std::vector<std::string>& forgotten, uint64_t outbox_seq) {
  rocksdb::WriteBatch batch;
  for (const auto& [k, v] : live) {
    if (v) {
      batch.Put(k, *v);
    } else {
      batch.Delete(k);
    }
  }
  for (const auto& [p, off] : offsets)
    batch.Put(std::string(kOffsetPrefix) + std::to_string(p), std::to_string(off));
  for (const OutboxEntry& e : added) batch.Put(e.key, EncodeOutboxEntry(e));
  for (const std::string& k : forgotten) batch.Delete(k);
  batch.Put(std::string(kOutboxSeqKey), std::to_string(outbox_seq));
  if (rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch); !s.ok())
    return Internal("diagnosis state " + path_ + ": " + s.ToString());
  return Status::Ok();
}

Status DiagnosisStore::Forget(const std::vector<std::string>& keys) {
  rocksdb::WriteBatch batch;
  for (const std::string& k : keys) batch.Delete(k);
  if (rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch); !s.ok())
    return Internal("diagnosis state " + path_ + ": cannot forget delivered entries: " +
                    s.ToString());
  return Status::Ok();
}

Result<std::vector<Incident>> ReadIncidents(const std::string& state_dir) {
  const std::string path = DbPath(state_dir);
  rocksdb::Options dbo;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(dbo, path, &raw);
  std::unique_ptr<rocksdb::DB> db(raw);
  if (!s.ok()) {
    if (s.IsNotFound() || s.IsIOError()) return NotFound(path + ": no diagnosis state there");
    return Internal(path + ": " + s.ToString());
  }
  std::vector<Incident> open, resolved;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix(LiveDiagnosis::kIncidentPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto inc = LiveDiagnosis::IncidentOfRecord(it->key().ToString(), it->value().ToString());
    if (!inc.ok()) return Status(inc.status().code(), path + ": " + inc.status().message());
    (inc->status == IncidentStatus::kResolved ? resolved : open).push_back(std::move(*inc));
  }
  auto newest = [](const Incident& a, const Incident& b) { return a.updated_at_s > b.updated_at_s; };
  std::sort(open.begin(), open.end(), newest);
  std::sort(resolved.begin(), resolved.end(), newest);
  open.insert(open.end(), std::make_move_iterator(resolved.begin()),
              std::make_move_iterator(resolved.end()));
  return open;
}

}  // namespace faultline::diagnosis
