#!/usr/bin/env bash
# Validates deploy/ offline against the Kubernetes API's types (tests/deploy/validate.mjs says
# how): the plain manifests, the Helm chart rendered with three sets of values, that the chart
# renders exactly the plain manifests' objects, that every chart value is documented, and that
# each check fails, naming the file and the field, on a manifest or a value that is wrong.
#
# Usage: tests/deploy/validate.sh [BUILD_DIR] [SOURCE_DIR]
# Needs npm (the first run installs package-lock.json's packages into BUILD_DIR/deploy-validation)
# and Go with Debian's Sprig and sigs.k8s.io/yaml (scripts/setup.sh), for the chart renderer
# tests/deploy/helm-template: no helm release can be installed on this machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "${2:-$here/../..}" && pwd)
build_dir=$(mkdir -p "${1:-$source_dir/build}" && cd "${1:-$source_dir/build}" && pwd)
work=$build_dir/deploy-validation
mkdir -p "$work"

for tool in node npm go; do
  command -v "$tool" >/dev/null || { echo "validate.sh: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
done

# The validators, pinned by package-lock.json; installed again only when the lock changes.
if ! cmp -s "$here/package-lock.json" "$work/package-lock.json" || [[ ! -d $work/node_modules ]]; then
  cp "$here/package.json" "$here/package-lock.json" "$work/"
  (cd "$work" && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
modules=$work/node_modules

# The chart renderer, from Debian's Go packages (GOPATH mode: nothing is downloaded).
(cd "$here/helm-template" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$work/go-cache GOFLAGS= \
  go build -o "$work/helm-template" .)

validate() { node "$here/validate.mjs" --modules "$modules" "$@"; }
render() { "$work/helm-template" "$@"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
pass() { echo "ok: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }

# Runs a command that must succeed; its output is shown.
expect_ok() {
  local name=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then
    sed 's/^/  /' "$tmp/out"
    pass "$name"
  else
    sed 's/^/  /' "$tmp/out"
    fail "$name (exit $?)"
  fi
}

# Runs a command that must exit 1 and print exactly the expected lines (in any order) before its
# summary line.
expect_errors() {
  local name=$1 expected=$2
  shift 2
  local code=0
  "$@" >"$tmp/out" 2>&1 || code=$?
  sed 's/^/  /' "$tmp/out"
  grep -v -e '^validate: ' -e '^values: ' "$tmp/out" | sort >"$tmp/got"
  sort <<<"$expected" >"$tmp/want"
  if [[ $code -eq 1 ]] && cmp -s "$tmp/got" "$tmp/want"; then
    pass "$name"
  else
    echo "  expected exit 1 with exactly:"
    sed 's/^/    /' "$tmp/want"
    fail "$name (exit $code)"
  fi
}

cd "$source_dir"
manifests=(deploy/kubernetes/*.yaml deploy/kubernetes/optional/*.yaml)
manifests=("${manifests[@]/deploy\/kubernetes\/kustomization.yaml/}")
read -r -a manifests <<<"${manifests[*]}"
chart=deploy/helm/faultline

# 1. The plain manifests.
expect_ok "plain manifests validate (${#manifests[@]} files)" validate check "${manifests[@]}"

# 2. The chart, rendered as the plain manifests are, validates and holds the same objects.
render --name faultline --namespace faultline -f tests/deploy/plain-values.yaml \
  --notes-out "$tmp/NOTES.txt" "$chart" >"$tmp/chart-plain.yaml"
expect_ok "chart rendered with tests/deploy/plain-values.yaml validates" validate check "$tmp/chart-plain.yaml"
expect_ok "chart renders the plain manifests' objects" validate same "$tmp/chart-plain.yaml" "${manifests[@]}"
if grep -q 'kubectl label node NODE faultline.dev/watch-services=true' "$tmp/NOTES.txt"; then
  pass "NOTES.txt renders"
else
  fail "NOTES.txt renders"
fi

# 3. The chart with its defaults (brokers are required) and with every option the other way.
printf 'kafka:\n  brokers: kafka:9092\n' >"$tmp/brokers.yaml"
render --name release --namespace observability -f "$tmp/brokers.yaml" "$chart" >"$tmp/chart-defaults.yaml"
expect_ok "chart rendered with its defaults validates" validate check "$tmp/chart-defaults.yaml"
render --name monitoring --namespace obs -f tests/deploy/values-all.yaml "$chart" >"$tmp/chart-all.yaml"
expect_ok "chart rendered with tests/deploy/values-all.yaml validates" validate check "$tmp/chart-all.yaml"
if render --name faultline "$chart" >/dev/null 2>"$tmp/err"; then
  fail "chart without kafka.brokers is refused"
elif grep -q "error calling required: kafka.brokers: set your Kafka's bootstrap servers" "$tmp/err"; then
  pass "chart without kafka.brokers is refused"
else
  cat "$tmp/err"
  fail "chart without kafka.brokers is refused (another error)"
fi

# 4. Every value is documented.
expect_ok "every value of values.yaml is documented" validate values "$chart/values.yaml"

# 5. The validation fails on a wrong field, naming the file and the field.
mkdir -p "$tmp/bad"
sed 's/^      hostPID: true$/      hostPid: true/' deploy/kubernetes/agent-daemonset.yaml >"$tmp/bad/agent-daemonset.yaml"
cmp -s deploy/kubernetes/agent-daemonset.yaml "$tmp/bad/agent-daemonset.yaml" && fail "hostPID was not found to misspell"
# In both DaemonSets of the file.
expect_errors "a misspelled field (hostPid) is an error naming the file and the field" \
"$tmp/bad/agent-daemonset.yaml: DaemonSet/faultline-agent: spec.template.spec.hostPid: Object literal may only specify known properties, but 'hostPid' does not exist in type 'PodSpec'. Did you mean to write 'hostPID'? [strict]
$tmp/bad/agent-daemonset.yaml (document 2): DaemonSet/faultline-agent-services: spec.template.spec.hostPid: Object literal may only specify known properties, but 'hostPid' does not exist in type 'PodSpec'. Did you mean to write 'hostPID'? [strict]" \
  validate check "$tmp/bad/agent-daemonset.yaml"

sed '0,/^                - BPF$/s//                - 7/' deploy/kubernetes/agent-daemonset.yaml >"$tmp/bad/agent-daemonset.yaml"
expect_errors "a capability that is not a string is an error naming the file and the field" \
"$tmp/bad/agent-daemonset.yaml: DaemonSet/faultline-agent: spec.template.spec.containers[0].securityContext.capabilities.add[0]: must be string [schema]
$tmp/bad/agent-daemonset.yaml: DaemonSet/faultline-agent: spec.template.spec.containers[0].securityContext.capabilities.add[0]: Type 'number' is not assignable to type 'string'. [strict]" \
  validate check "$tmp/bad/agent-daemonset.yaml"

# A value that renders a wrong field: the error names the template it came from.
printf 'kafka:\n  brokers: kafka:9092\nagent:\n  tolerations:\n    - {operator: Exists, tolerationSeconds: soon}\n' >"$tmp/bad-values.yaml"
render --name faultline --namespace faultline -f "$tmp/bad-values.yaml" "$chart" >"$tmp/chart-bad.yaml"
expect_errors "a value rendering a wrong field is an error naming the template and the field" \
"$tmp/chart-bad.yaml (faultline/templates/agent-daemonset.yaml): DaemonSet/faultline-agent: spec.template.spec.tolerations[0].tolerationSeconds: must be integer [schema]
$tmp/chart-bad.yaml (faultline/templates/agent-daemonset.yaml): DaemonSet/faultline-agent: spec.template.spec.tolerations[0].tolerationSeconds: Type 'string' is not assignable to type 'number'. [strict]
$tmp/chart-bad.yaml (faultline/templates/agent-daemonset.yaml): DaemonSet/faultline-agent-services: spec.template.spec.tolerations[0].tolerationSeconds: must be integer [schema]
$tmp/chart-bad.yaml (faultline/templates/agent-daemonset.yaml): DaemonSet/faultline-agent-services: spec.template.spec.tolerations[0].tolerationSeconds: Type 'string' is not assignable to type 'number'. [strict]" \
  validate check "$tmp/chart-bad.yaml"

# The chart and the plain manifests drifting apart is found.
sed 's/^              memory: 512Mi$/              memory: 768Mi/' deploy/kubernetes/agent-daemonset.yaml >"$tmp/bad/agent-daemonset.yaml"
drifted=("${manifests[@]/deploy\/kubernetes\/agent-daemonset.yaml/$tmp/bad/agent-daemonset.yaml}")
expect_errors "a plain manifest that differs from the chart is found" \
"same: DaemonSet/faultline/faultline-agent: differs at spec.template.spec.containers[0].resources.limits.memory (\"512Mi\" against \"768Mi\")
same: DaemonSet/faultline/faultline-agent-services: differs at spec.template.spec.containers[0].resources.limits.memory (\"512Mi\" against \"768Mi\")" \
  bash -c 'node "$0" --modules "$1" same "${@:2}" | grep -v "^same: [0-9]* objects"; exit "${PIPESTATUS[0]}"' \
  "$here/validate.mjs" "$modules" "$tmp/chart-plain.yaml" "${drifted[@]}"

# An undocumented value is found.
sed '/^  # Default: 9464$/d' "$chart/values.yaml" >"$tmp/values.yaml"
expect_errors "an undocumented value is found" \
"$tmp/values.yaml: agent.metricsPort: no comment ending \"Default: X\"" \
  validate values "$tmp/values.yaml"

echo "deploy: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
