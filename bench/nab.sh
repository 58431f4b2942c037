#!/usr/bin/env bash
# Scores every built-in detector on the Numenta Anomaly Benchmark (../shared/data/nab) with NAB's
# rules (all but threshold and burn_rate, which need domain inputs), next to windowedGaussian's stored outputs scored by the same scorer (the scorer's check).
# Prints a table; the last line is best_standard=<score> detector=<name>.
# Usage: bench/nab.sh   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
fl=build/faultline
nab=../shared/data/nab
printf '%-18s %9s %9s %9s %12s %12s\n' detector standard low_FP low_FN ns_per_point state_bytes
row() {  # row NAME ARGS…
  local name=$1; shift
  local out; out=$("$fl" detectors nab --nab-dir "$nab" "$@")
  local cost state
  cost=$(sed -n 's/.*ns_per_point=\([0-9.]*\).*/\1/p' <<<"$out"); state=$(sed -n 's/.*state_bytes=\([0-9]*\).*/\1/p' <<<"$out")
  printf '%-18s %9s %9s %9s %12s %12s\n' "$name" \
    "$(awk '$1=="standard" {print $2}' <<<"$out")" "$(awk '$1=="reward_low_FP_rate" {print $2}' <<<"$out")" \
    "$(awk '$1=="reward_low_FN_rate" {print $2}' <<<"$out")" "${cost:--}" "${state:--}"
}
row "windowedGaussian*" --detector windowedGaussian | tee /tmp/nab_rows.$$
for d in $("$fl" detectors list | awk '$1 != "threshold" && $1 != "burn_rate" {print $1}'); do row "$d" --run "$d"; done | tee -a /tmp/nab_rows.$$
echo "(* stored outputs of NAB's windowedGaussian, scored here; published: 39.6 / 20.9 / 47.4)"
tail -n +2 /tmp/nab_rows.$$ | sort -k2 -n -r | head -1 | awk '{print "best_standard=" $2 " detector=" $1}'
rm -f /tmp/nab_rows.$$
