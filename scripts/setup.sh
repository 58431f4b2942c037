#!/usr/bin/env bash
# Installs every Debian package faultline's build, tests and benchmarks need, and mounts tracefs.
# Idempotent: a second run installs nothing and changes nothing. Needs root (Debian 12).
#   --demo  only what building faultline and running the lab's demo need (scripts/run.sh): not
#           the containers, Go and npm that only tests use (a third of the download).
set -euo pipefail
demo=
[[ ${1:-} == --demo ]] && demo=1

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang llvm libclang-rt-14-dev git
  # eBPF
  libbpf-dev bpftool libelf-dev zlib1g-dev
  # Kafka, state, wire format
  librdkafka-dev kcat librocksdb-dev libprotobuf-dev protobuf-compiler
  # graph, algebra, config, JSON, CLI, logging, metrics, HTTP, hashing
  libboost-graph-dev libeigen3-dev libyaml-cpp-dev nlohmann-json3-dev libsimdjson-dev
  libcli11-dev libspdlog-dev libfmt-dev prometheus-cpp-dev libcpp-httplib-dev
  libcurl4-openssl-dev libssl-dev libabsl-dev libxxhash-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev librapidcheck-dev
  python3 python3-jsonschema python3-protobuf python3-yaml nodejs curl iproute2 nftables iptables nginx-light wrk procps graphviz
)
test_only=(
  # real containers (Podman with runc: crun refuses a hybrid cgroup layout), an image from busybox
  podman runc busybox-static
  # deploy/ validation (tests/deploy/validate.sh): Go, Sprig and sigs.k8s.io/yaml for its Helm
  # chart renderer; its validators come from npm
  golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev
)

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: must run as root (it installs Debian packages with apt-get)" >&2
  exit 1
fi

[[ -n $demo ]] || packages+=("${test_only[@]}")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # nginx must not start as a system service: the benchmark starts its own instance.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  rm -f /usr/sbin/policy-rc.d
fi

# npm: Debian's package unless a Node.js that brings its own (NodeSource's conflicts with it) is here.
if [[ -z $demo ]] && ! command -v npm >/dev/null; then
  echo "setup.sh: installing npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends npm
fi

if [[ ! -d /sys/kernel/tracing/events ]]; then
  mount -t tracefs tracefs /sys/kernel/tracing
fi
