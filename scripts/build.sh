#!/usr/bin/env bash
# Configures and builds faultline into build/ (RelWithDebInfo). Needs scripts/setup.sh first.
# Usage: scripts/build.sh [TARGET...]  (default: every target; scripts/run.sh builds `faultline`)
# FAULTLINE_DEBUG_INFO=0: -O2 without -g (scripts/test.sh: a third less compile time; sanitizer
# reports come from the ASan build, which keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
flags="-O2 -g -DNDEBUG"
[[ ${FAULTLINE_DEBUG_INFO:-1} == 0 ]] && flags="-O2 -DNDEBUG"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="$flags" >/dev/null
targets=()
(($#)) && targets=(--target "$@")
cmake --build build -j"$(nproc)" "${targets[@]}"
