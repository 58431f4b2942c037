#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite; exits non-zero on any failure.
#  1. RelWithDebInfo build (gcc): every ctest label (unit, ebpf, kafka).
#  2. ASan+UBSan build (clang): the unit tests, and the libFuzzer targets for a bounded time
#     (FAULTLINE_FUZZ_SECONDS each, default 60).
#  3. The same build, whole: the ebpf and kafka tests again under the sanitizers
#     (scripts/test_sanitized.sh).
# With FAULTLINE_REQUIRE_EBPF=1 (set by .ci/run) a test that cannot load BPF fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure)

CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DFAULTLINE_SANITIZE=ON -DFAULTLINE_FUZZ=ON -DFAULTLINE_FUZZ_SECONDS="${FAULTLINE_FUZZ_SECONDS:-60}" >/dev/null
targets=$(cd build-asan && ctest -N -L 'unit|fuzz' | sed -n 's/^ *Test *#[0-9]*: //p')
cmake --build build-asan -j"$(nproc)" --target $targets
(cd build-asan && ctest -L 'unit|fuzz' --output-on-failure)

bash scripts/test_sanitized.sh
