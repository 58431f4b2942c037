#!/usr/bin/env bash
# Every libFuzzer target for long (CI runs each for 15 s): SECONDS each (default 600), two at a
# time, from the scratch corpora CI's runs grew. Builds build-asan/ (clang, ASan+UBSan) first.
# A crash prints the sanitizer's report and the failing input (tests/fuzz/run_fuzz.sh); add the
# input to the target's seeds under tests/data/fuzz/ with the fix.
# Usage: bench/fuzz.sh [SECONDS] [NAME_REGEX]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600} only=${2:-.}
CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DFAULTLINE_SANITIZE=ON -DFAULTLINE_FUZZ=ON -DFAULTLINE_FUZZ_SECONDS="$seconds" >/dev/null
cmake --build build-asan -j"$(nproc)"
rc=0
(cd build-asan && ctest -L fuzz -R "$only" -j"$(nproc)" --timeout $((seconds + 300)) --output-on-failure) || rc=$?
# Back to CI's setting, so that a later ctest in build-asan is CI's.
cmake -S . -B build-asan -DFAULTLINE_FUZZ_SECONDS=15 >/dev/null
exit $rc
