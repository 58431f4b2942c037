#!/usr/bin/env bash
# Dimension drill-down on the Squeeze B0 cases in ../shared/data/squeeze-b0-dev (180 cases, 9
# settings): runs `faultline attribute` on every case and scores the root-cause sets as the papers
# do (an element counts only if it matches exactly; TP, FP and FN summed per setting; F1 =
# 2TP / (2TP + FP + FN)). Prints F1 per setting, then as its last line
# overall_f1=<…> mean_ms_per_case=<…> (parse + drill-down, measured inside the process).
# Usage: bench/attribution_b0.sh [DATA_DIR]   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/squeeze-b0-dev}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for dir in "$data"/B_cuboid_layer_*; do
  cases=$(find "$dir" -name '*.csv' ! -name injection_info.csv | sort)
  # shellcheck disable=SC2086
  build/faultline attribute --timing $cases | sed "s|^|$(basename "$dir")\t|" >>"$out"
done
python3 - "$data" "$out" <<'PY'
import csv, os, sys
data, results = sys.argv[1], sys.argv[2]
norm = lambda s: {"&".join(sorted(e.split("&"))) for e in s.split(";") if e}
got, ms = {}, []
with open(results) as f:
    for line in f:
        setting, path, t, found = (line.rstrip("\n").split("\t") + [""])[:4]
        got[(setting, os.path.basename(path)[:-4])] = norm(found)
        ms.append(float(t))
tp = fp = fn = 0
for setting in sorted(d for d in os.listdir(data) if d.startswith("B_cuboid_layer_")):
    s_tp = s_fp = s_fn = 0
    with open(os.path.join(data, setting, "injection_info.csv")) as f:
        for row in csv.DictReader(f):
            want, have = norm(row["set"]), got.get((setting, row["timestamp"]))
            if have is None:
                continue  # a truth row without a case file (not in this subset)
            s_tp += len(want & have); s_fp += len(have - want); s_fn += len(want - have)
    tp += s_tp; fp += s_fp; fn += s_fn
    print(f"{setting[len('B_cuboid_'):]} f1={2 * s_tp / (2 * s_tp + s_fp + s_fn):.3f} tp={s_tp} fp={s_fp} fn={s_fn}")
print(f"cases={len(ms)}")
print(f"overall_f1={2 * tp / (2 * tp + fp + fn):.3f} mean_ms_per_case={sum(ms) / len(ms):.2f}")
PY
