#!/usr/bin/env bash
# Benchmarks (g)-(i): I/O-bound nodes, many in flight per executor, against Dramatiq on the
# same local SQS server; plus reruns of (a) chain-10 and (b) diamond-8 requests per node,
# (c) CPU-bound --procs 2 / --procs 1 with --threads 1, and (d) no-op nodes/s (memory).
#
#   benchmarks/run_io.sh [OUT_DIR]            # REPS=3: about 12 min on 2 cores
#   REPS=1 SMALL=1 benchmarks/run_io.sh        # a dry run with small counts (~3 min)
#   ONLY='^(g|h|gpeer|hpeer)__' benchmarks/run_io.sh   # only the cases whose label matches
#   PYTHONPATH=/tmp/snap benchmarks/run_io.sh  # measure a snapshot (git archive HEAD | tar -x -C
#                                              # /tmp/snap) while the work tree keeps changing
#
# Every case runs REPS times, ours and Dramatiq's interleaved in each repetition, so that the
# noise of a shared machine spreads over both; benchmarks/summarize_io.py takes medians and
# medians of same-repetition ratios. Each backlog is written before the workers start.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-benchmarks/out/io-$(date -u +%Y%m%dT%H%M%SZ)}
REPS=${REPS:-3}
SMALL=${SMALL:-0}
mkdir -p "$OUT"

# Backlog sizes: several seconds of draining at the rate each case is expected to reach.
if [ "$SMALL" = 1 ]; then
  G_DEF=300 G_C1000_MEM=1500 G_C1000_MS=600 H_RUNS=64 PEER_N=48 D_RUNS=500 AB_RUNS=10 C_RUNS=12
else
  G_DEF=1200 G_C1000_MEM=8000 G_C1000_MS=2500 H_RUNS=320 PEER_N=200 D_RUNS=3000 AB_RUNS=50 C_RUNS=24
fi

{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm); $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "memory: $(free -g | awk '/Mem:/{print $2}') GiB; python: $($PY -V 2>&1)"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null)$(git status --porcelain 2>/dev/null | grep -q . && echo +dirty)"
  echo "PYTHONPATH: ${PYTHONPATH:-none} (a snapshot of the code under test, if set)"
  echo "dramatiq: $($PY -c 'import importlib.metadata as m; print(m.version("dramatiq"), "dramatiq-sqs", m.version("dramatiq-sqs"))' 2>&1)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "REPS=$REPS SMALL=$SMALL ONLY=${ONLY:-all}"
} > "$OUT/machine.txt"
: > "$OUT/commands.txt"

# run LABEL CMD...: one case, its command logged; a failure is recorded, not fatal
run() {
  local label=$1; shift
  if [ -n "${ONLY:-}" ] && ! [[ $label =~ $ONLY ]]; then return 0; fi
  echo "$*" >> "$OUT/commands.txt"
  echo "[$(date -u +%H:%M:%S)] $label" >&2
  if ! timeout 300 "$@" > /dev/null 2>> "$OUT/stderr.log"; then
    echo "FAILED: $label (see $OUT/stderr.log)" | tee -a "$OUT/failures.txt" >&2
  fi
}
# lt LABEL ARGS...: flowcraft-sqs loadtest, written to $OUT/LABEL.{json,md}
lt() {
  local label=$1; shift
  run "$label" "$PY" -m flowcraft_sqs.loadtest "$@" --out "$OUT/$label" --quiet --no-progress --no-plots
}
# peer LABEL ARGS...: benchmarks/peers.py (Dramatiq), written to $OUT/LABEL.{json,md}
peer() {
  local label=$1; shift
  run "$label" "$PY" benchmarks/peers.py "$@" --out "$OUT/$label"
}

for rep in $(seq 1 "$REPS"); do
  r="__r$rep"
  # (g) 1 s async node, --procs 2, one-node runs drained from a backlog
  lt "g__memory-default$r" --workload async-wait --node-ms 1000 --runs "$G_DEF" --procs 2 --self-contained --backend memory
  lt "g__memory-c1000$r" --workload async-wait --node-ms 1000 --runs "$G_C1000_MEM" --procs 2 \
    --worker-concurrency 1000 --self-contained --backend memory
  lt "g__ministack-default$r" --workload async-wait --node-ms 1000 --runs "$G_DEF" --procs 2 --self-contained --backend ministack
  peer "gpeer__dramatiq-ministack$r" --kind async --node-ms 1000 --messages "$PEER_N" --processes 2 --backend ministack
  lt "g__ministack-c1000$r" --workload async-wait --node-ms 1000 --runs "$G_C1000_MS" --procs 2 \
    --worker-concurrency 1000 --self-contained --backend ministack
  # not a target: the same with --threads 64 (an executor takes no more queued items at once
  # than it has free threads, so the thread count also bounds how fast async nodes are taken)
  lt "g__memory-c1000-t64$r" --workload async-wait --node-ms 1000 --runs "$G_C1000_MEM" --procs 2 \
    --worker-concurrency 1000 --threads 64 --self-contained --backend memory
  lt "g__ministack-c1000-t64$r" --workload async-wait --node-ms 1000 --runs "$G_C1000_MS" --procs 2 \
    --worker-concurrency 1000 --threads 64 --self-contained --backend ministack
  # (h) 1 s blocking sync node, --threads 16
  lt "h__memory-t16$r" --workload sync-wait --node-ms 1000 --runs "$H_RUNS" --procs 2 --threads 16 --self-contained --backend memory
  lt "h__ministack-t16$r" --workload sync-wait --node-ms 1000 --runs "$H_RUNS" --procs 2 --threads 16 --self-contained --backend ministack
  peer "hpeer__dramatiq-ministack$r" --kind sync --node-ms 1000 --messages "$PEER_N" --processes 2 --backend ministack
  # (a), (b): AWS requests per node, closed loop of 10 runs
  lt "a__ministack$r" --workload chain --length 10 --runs "$AB_RUNS" --concurrency 10 --procs 2 --self-contained --backend ministack
  lt "b__ministack$r" --workload diamond --width 8 --runs "$AB_RUNS" --concurrency 10 --procs 2 --self-contained --backend ministack
  # (d) no-op nodes, in-memory backend (a backlog drain)
  lt "d__memory$r" --workload chain --length 10 --runs "$D_RUNS" --procs 2 --self-contained --backend memory
  # (c) CPU-bound nodes, --procs 1 then --procs 2, one sync node at a time per executor
  for p in 1 2; do
    lt "c__memory-p$p$r" --blueprint lt-cpu-20ms-chain-5 --runs $((C_RUNS * 5 / 2)) --procs "$p" --threads 1 \
      --self-contained --backend memory
  done
  for p in 1 2; do
    lt "c__ministack-p$p$r" --blueprint lt-cpu-50ms-chain-5 --runs "$C_RUNS" --concurrency 6 --warmup 6 \
      --procs "$p" --threads 1 --self-contained --backend ministack
  done
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
"$PY" benchmarks/summarize_io.py "$OUT" > "$OUT/summary.md"
echo "wrote $OUT/summary.md" >&2
