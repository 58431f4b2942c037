# Sourced by the integration scripts. Sets `work` (a scratch directory) and `pids` (background
# processes to stop), both cleaned up on exit in reverse order of start; scripts add their own
# cleanup commands to `cleanup_hooks` (run after the processes stop, before `work` goes).
work=$(mktemp -d)
pids=()
cleanup_hooks=()
fl_cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  for i in "${pids[@]}"; do wait "$i" 2>/dev/null || true; done
  for i in "${cleanup_hooks[@]}"; do eval "$i" || true; done
  # A process a hook stopped can still be writing its last files (Podman's conmon and its
  # container cleanup, container_test): bounded retries, then a warning, never the test's verdict.
  for i in 1 2 3 4 5 6 7 8 9 10; do
    rm -rf "$work" 2>/dev/null && return 0
    sleep 0.3
  done
  echo "warning: could not remove $work: $(rm -rf "$work" 2>&1 | head -3)" >&2
}
trap fl_cleanup EXIT

# wait_for FILE PATTERN: waits (at most 30 s) until FILE has a line matching PATTERN; prints it.
wait_for() {
  local file=$1 pattern=$2 i
  for ((i = 0; i < 300; i++)); do
    if grep -q -- "$pattern" "$file" 2>/dev/null; then grep -m1 -- "$pattern" "$file"; return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for '$pattern' in $file" >&2; cat "$file" >&2; return 1
}

# skip_without_ebpf FAULTLINE: exits 77 (ctest's SKIP_RETURN_CODE: reported as skipped) when this
# machine lacks what the agent needs (the agent exits 3: privilege, BTF, tracefs, BPF, a
# tracepoint), or fails under FAULTLINE_REQUIRE_EBPF=1 (CI). Any other failure to start (a
# program the verifier refused) fails the test.
skip_without_ebpf() {
  local rc=0
  "$1" agent --output jsonl --duration 0 >/dev/null 2>"$work/probe.err" || rc=$?
  case $rc in
    0) return 0 ;;
    3) if [[ ${FAULTLINE_REQUIRE_EBPF:-0} == 1 ]]; then
         echo "FAIL: eBPF required (FAULTLINE_REQUIRE_EBPF=1): $(cat "$work/probe.err")"; exit 1
       fi
       echo "SKIP: eBPF unavailable: $(cat "$work/probe.err")"; exit 77 ;;
    *) echo "FAIL: the agent cannot start (exit $rc): $(cat "$work/probe.err")"; exit 1 ;;
  esac
}
