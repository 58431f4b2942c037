#!/usr/bin/env bash
# Configures and builds faultline into build/ (RelWithDebInfo). Needs scripts/setup.sh first.
# Usage: scripts/build.sh [TARGET...]  (default: every target; scripts/run.sh builds `faultline`)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=()
(($#)) && targets=(--target "$@")
cmake --build build -j"$(nproc)" "${targets[@]}"
