// Test support for kernel-level agent tests: an Agent feeding an in-memory sink, child processes
// started and stopped by pid, and the rule that a missing kernel feature skips the test unless
// FAULTLINE_REQUIRE_EBPF=1 makes it a failure.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "events.pb.h"
#include "faultline/agent/agent.h"
#include "faultline/common/metrics.h"

namespace faultline::testing {

class CollectingSink : public agent::BatchSink {
 public:
  void Publish(const v1::EventBatch& batch) override { batches.push_back(batch); }
  // Every event of every batch, with its batch's process table.
  std::vector<v1::Event> Events(const std::function<bool(const v1::Event&)>& keep) const {
    std::vector<v1::Event> out;
    for (const auto& b : batches)
      for (const auto& e : b.events())
        if (keep(e)) out.push_back(e);
    return out;
  }
  std::vector<v1::EventBatch> batches;
};

// Skips (or fails, under FAULTLINE_REQUIRE_EBPF=1) when the kernel side cannot run here. ctest
// reports the binary skipped only when every case skipped (tests/common/gtest_main.cc).
#define FAULTLINE_SKIP_OR_FAIL_(status)                                                      \
  do {                                                                                       \
    const char* req = getenv("FAULTLINE_REQUIRE_EBPF");                                      \
    if (req && std::string(req) == "1") FAIL() << "eBPF required: " << (status).message();   \
    GTEST_SKIP() << "eBPF unavailable: " << (status).message();                              \
  } while (0)
#define FAULTLINE_REQUIRE_KERNEL_OR_SKIP()                                                   \
  do {                                                                                       \
    ::faultline::Status fl_s_ = ::faultline::agent::CheckKernelPrerequisites();              \
    if (!fl_s_.ok()) FAULTLINE_SKIP_OR_FAIL_(fl_s_);                                         \
  } while (0)
// Asserts that Agent::Start (or KernelProbes::Open) succeeded: a missing capability of the
// machine skips (or fails under FAULTLINE_REQUIRE_EBPF=1); any other error (a program the
// verifier refused) fails.
#define FAULTLINE_ASSERT_STARTED(result)                                                     \
  do {                                                                                       \
    if (!(result).ok() && ::faultline::agent::IsMissingCapability((result).status()))        \
      FAULTLINE_SKIP_OR_FAIL_((result).status());                                            \
    ASSERT_TRUE((result).ok()) << (result).status().ToString();                              \
  } while (0)

// A child process started with fork/exec; killed by its pid (and only it) when destroyed.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }
  pid_t pid() const { return pid_; }
  // Reads stdout until a line "key=value" appears; returns the value, or "" after `timeout`.
  std::string WaitForValue(const std::string& key, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string buf;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char c[256];
      ssize_t n = read(out_, c, sizeof(c));
      if (n <= 0) return "";
      buf.append(c, n);
      size_t at = buf.find(key + "=");
      size_t eol = at == std::string::npos ? at : buf.find('\n', at);
      if (eol != std::string::npos) return buf.substr(at + key.size() + 1, eol - at - key.size() - 1);
    }
    return "";
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

inline int RunCommand(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace faultline::testing
