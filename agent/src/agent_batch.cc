// The batch being filled, its processes' identities, and the counters of what was published and
// what was lost (agent_impl.h).
#include "agent_impl.h"

namespace faultline::agent {

void Agent::Impl::CountEvent(Kind kind) {
  kinds[kind].total->Increment();
  kinds[kind].interval++;
}

// Called per event with n == 0 mostly: nothing is built before that is known.
void Agent::Impl::CountDrop(std::string_view reason_view, uint64_t n) {
  if (n == 0) return;
  const std::string reason(reason_view);
  AgentDropped(metrics, reason).Increment(n);
  interval_dropped[reason] += n;
  LogRateLimiter& limiter =
      drop_log_limiters.try_emplace(reason, std::chrono::seconds(10)).first->second;
  uint64_t suppressed = 0;
  if (limiter.Allow(&suppressed)) {
    spdlog::warn("agent dropped {} ({}){}", n, reason,
                 suppressed ? fmt::format("; {} earlier reports of this reason suppressed", suppressed) : "");
  }
}

v1::Event* Agent::Impl::NewEvent(uint32_t pid, std::string_view comm, uint64_t cgroup_id, uint64_t now_mono) {
  if (batch->events_size() >= static_cast<int>(opts.batch_max_events)) PublishBatch();
  if (batch->events_size() == 0) batch_opened_ns = now_mono;
  if (pid != 0 && batch_pids.insert(pid).second) {
    const ProcessInfo& info = processes.Resolve(pid, comm, cgroup_id, now_mono);
    v1::ProcessIdentity* p = batch->add_processes();
    p->set_pid(pid);
    p->set_comm(ValidUtf8(info.comm));
    p->set_cgroup_id(info.cgroup_id);
    p->set_cgroup_path(ValidUtf8(info.cgroup_path));
    p->set_container_id(info.container.container_id);
    p->set_container_runtime(info.container.runtime);
    p->set_pod_uid(info.container.pod_uid);
    if (!info.container.container_id.empty() || !info.container.pod_uid.empty()) {
      v1::ContainerMeta meta;
      AddContainerMeta(info.container.container_id, info.container.runtime, info.container.pod_uid, &meta);
      if (meta.ByteSizeLong() > 0) *p->mutable_container() = std::move(meta);
    }
  }
  v1::Event* e = batch->add_events();
  e->set_pid(pid);
  return e;
}

void Agent::Impl::PublishBatch() {
  if (batch->events_size() == 0) return;
  batch->set_sequence(sequence++);
  sink->Publish(*batch);
  NewBatch();
}

void Agent::Impl::NewBatch() {
  if (!arena) {
    google::protobuf::ArenaOptions o;
    o.start_block_size = 256 << 10;
    o.max_block_size = 4 << 20;
    arena = std::make_unique<google::protobuf::Arena>(o);
  } else {
    arena->Reset();
  }
  batch = google::protobuf::Arena::CreateMessage<v1::EventBatch>(arena.get());
  batch->CopyFrom(batch_header);
  batch_pids.clear();
}

}  // namespace faultline::agent
