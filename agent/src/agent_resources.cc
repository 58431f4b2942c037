// Resource pressure: cgroups' and the machine's CPU, memory and I/O, and OOM kills
// (agent_impl.h).
#include "agent_impl.h"

namespace faultline::agent {

void Agent::Impl::OnOom(const fl_oom_event& o) {
  if (!resources) return;
  v1::OomKill kill = resources->Oom(o);
  if (!resources->OnMachine(kill.cgroup_path())) return;  // another emulated machine's
  v1::Event* e = NewEvent(o.victim_pid, kill.victim_comm(), 0, o.ts_ns);
  e->set_time_unix_ns(ToUnix(o.ts_ns));
  *e->mutable_oom_kill() = std::move(kill);
  CountEvent(kOomKill);
  spdlog::info("OOM kill: pid {} ({}) in memory cgroup {}", o.victim_pid, e->oom_kill().victim_comm(),
               e->oom_kill().cgroup_path().empty() ? "?" : e->oom_kill().cgroup_path());
}

void Agent::Impl::ReadResources(uint64_t now) {
  const uint64_t interval = last_resource_read_ns ? now - last_resource_read_ns : 0;
  last_resource_read_ns = now;
  probes->ReadResources(&runq_samples, &io_samples);
  resources->Collect(runq_samples, io_samples, now, interval, &resource_out, &forget_runq, &forget_io);
  probes->ForgetResources(forget_runq, forget_io);
  CountDrop("resource_cgroups_over_limit", resource_out.cgroups_over_limit);
  CountDrop("resource_cgroup_unknown", resource_out.unknown_cgroups);
  for (v1::CgroupResources& c : resource_out.cgroups) {
    if (!c.container_id().empty() || !c.pod_uid().empty()) {
      v1::ContainerMeta meta;
      AddContainerMeta(c.container_id(), c.container_runtime(), c.pod_uid(), &meta);
      if (meta.ByteSizeLong() > 0) *c.mutable_container() = std::move(meta);
    }
    v1::Event* e = NewEvent(0, {}, 0, now);
    e->set_time_unix_ns(ToUnix(now));
    *e->mutable_cgroup_resources() = std::move(c);
    CountEvent(kCgroupResources);
  }
  v1::Event* e = NewEvent(0, {}, 0, now);
  e->set_time_unix_ns(ToUnix(now));
  *e->mutable_machine_resources() = std::move(resource_out.machine);
  CountEvent(kMachineResources);
}

}  // namespace faultline::agent
