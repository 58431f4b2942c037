#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite; exits non-zero on any failure. Prints each
# stage's time; the budget for all of it is 35 minutes on 2 cores (docs/contributing.md).
#  1. setup: Debian packages (scripts/setup.sh).
#  2. build: -O2 (gcc), every target; without debug info (FAULTLINE_DEBUG_INFO=0), a third less
#     compile time.
#  3. tests: every ctest label (unit, fuzz corpora, cli, ebpf, kafka, lab smoke, deploy), among
#     them replay_test: the recorded lab situations diagnosed again (tests/data/replay/).
#  4. asan build: the same with clang's AddressSanitizer and UndefinedBehaviorSanitizer, and the
#     libFuzzer targets.
#  5. asan unit+fuzz: the unit tests, and every fuzz target for FAULTLINE_FUZZ_SECONDS (default
#     15; bench/fuzz.sh runs them long), two at a time.
#  6. asan ebpf+kafka: the kernel and Kafka tests again under the sanitizers
#     (scripts/test_sanitized.sh says which and why not the others).
# With FAULTLINE_REQUIRE_EBPF=1 (set by .ci/run) a test that cannot load BPF fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
stage_start=$SECONDS
stage() {  # stage NAME: the previous stage's time, then NAME's banner
  local now=$SECONDS
  [[ -n ${stage_name:-} ]] && printf '=== stage %s: %d s (total %d s)\n' "$stage_name" $((now - stage_start)) $((now - t0))
  stage_name=$1 stage_start=$now
  [[ -n $stage_name ]] && printf '=== stage %s\n' "$stage_name"
  return 0
}
stage setup
bash scripts/setup.sh
stage build
FAULTLINE_DEBUG_INFO=0 bash scripts/build.sh
stage tests
(cd build && ctest --output-on-failure)
stage "asan build"
CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DFAULTLINE_SANITIZE=ON -DFAULTLINE_FUZZ=ON -DFAULTLINE_FUZZ_SECONDS="${FAULTLINE_FUZZ_SECONDS:-15}" >/dev/null
cmake --build build-asan -j"$(nproc)"
stage "asan unit+fuzz"
(cd build-asan && ctest -L 'unit|fuzz' -j"$(nproc)" --output-on-failure)
stage "asan ebpf+kafka"
FAULTLINE_SKIP_BUILD=1 bash scripts/test_sanitized.sh
stage ""
printf '=== all tests passed in %d s\n' $((SECONDS - t0))
