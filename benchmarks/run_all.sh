#!/usr/bin/env bash
# Benchmarks (a)-(f) of the load-test issue, on the fastest faithful local backend
# (fauxqs + DynamoDB Local, in a loopback-only network namespace) and on the default test
# backend (ministack), plus the in-memory runtime and the work-queue micro-benchmark.
#
#   benchmarks/run_all.sh [OUT_DIR]          # ~10 min with REPS=3 on 2 cores
#   REPS=1 benchmarks/run_all.sh             # one repetition (~3.5 min)
#   BACKENDS=ministack PROFILE=0 benchmarks/run_all.sh
#   EXTRA=1 benchmarks/run_all.sh             # also (e) through SQS: --no-local-continuation
#
# Every case runs REPS times, cases and backends interleaved so that noise from other
# work on the machine spreads over all of them; benchmarks/summarize.py takes medians (and
# medians of same-repetition ratios for (c)) and checks the targets. fauxqs-ddblocal cases
# re-run themselves under `unshare -n` (root), see `flowcraft-sqs loadtest --help`.
# PROFILE=1 (default) adds py-spy profiles of the hot paths, outside the measured reps.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-benchmarks/out/$(date -u +%Y%m%dT%H%M%SZ)}
REPS=${REPS:-3}
BACKENDS=${BACKENDS:-"fauxqs-ddblocal ministack"}
PROFILE=${PROFILE:-1}
EXTRA=${EXTRA:-0}
mkdir -p "$OUT"

{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm); $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "memory: $(free -g | awk '/Mem:/{print $2}') GiB; python: $($PY -V 2>&1)"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null)$(git status --porcelain 2>/dev/null | grep -q . && echo +dirty)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "REPS=$REPS BACKENDS=$BACKENDS"
} > "$OUT/machine.txt"
: > "$OUT/commands.txt"

# lt LABEL ARGS...: one load test, written to $OUT/LABEL.{json,md,png}
lt() {
  local label=$1; shift
  local cmd=(flowcraft-sqs loadtest "$@" --out "$OUT/$label" --quiet --no-progress)
  echo "${cmd[*]}" >> "$OUT/commands.txt"
  echo "[$(date -u +%H:%M:%S)] $label" >&2
  if ! "$PY" -m flowcraft_sqs.loadtest "$@" --out "$OUT/$label" --quiet --no-progress 2>> "$OUT/stderr.log"; then
    echo "FAILED: $label (see $OUT/stderr.log)" | tee -a "$OUT/failures.txt" >&2
  fi
}

# DynamoDB Local's JVM needs a warm-up (its first ~20 s of updates cost 2-3x more CPU,
# /work/shared/emulators/REPORT.md): its cases warm up for DDBLOCAL_WARMUP before measuring.
DDBLOCAL_WARMUP=${DDBLOCAL_WARMUP:-6s}

for rep in $(seq 1 "$REPS"); do
  for b in $BACKENDS; do
    sc=(--self-contained --backend "$b")
    case $b in *ddblocal) warm=(--warmup "$DDBLOCAL_WARMUP") ;; *) warm=() ;; esac
    # (a) 10-node chain x 50 runs
    lt "a__${b}__r$rep" --workload chain --length 10 --runs 50 --concurrency 10 --procs 2 "${sc[@]}" "${warm[@]}"
    # (b) 8-wide diamond with an `all` join x 50 runs
    lt "b__${b}__r$rep" --workload diamond --width 8 --runs 50 --concurrency 10 --procs 2 "${sc[@]}" "${warm[@]}"
    # (c) CPU-bound nodes, --procs 1 vs --procs 2, back to back
    for p in 1 2; do
      lt "c__${b}-p${p}__r$rep" --blueprint lt-cpu-50ms-chain-5 --runs 24 --concurrency 6 --warmup 6 \
        --procs "$p" "${sc[@]}" "${warm[@]}"
    done
    # (e) hop latency under light load: one run at a time
    lt "e__${b}__r$rep" --workload chain --length 10 --runs 20 --concurrency 1 --warmup 3 --procs 2 "${sc[@]}" "${warm[@]}"
    if [ "$EXTRA" = 1 ]; then  # every hop through SQS (send, long poll, read), not run locally
      lt "esqs__${b}__r$rep" --workload chain --length 10 --runs 10 --concurrency 1 --warmup 3 --procs 2 \
        --worker-arg=--no-local-continuation "${sc[@]}" "${warm[@]}"
    fi
  done
  # (d) no-op nodes on the in-memory backend: the runtime's own overhead (a backlog drain)
  lt "d__memory__r$rep" --workload chain --length 10 --runs 3000 --procs 2 --self-contained --backend memory
  lt "d__memory-tuned__r$rep" --workload chain --length 10 --runs 1500 --procs 2 --receivers 2 \
    --worker-arg=--prefetch=20 --self-contained --backend memory
  # (c) again without any server on the machine: executor scaling alone
  for p in 1 2; do
    lt "c__memory-p${p}__r$rep" --blueprint lt-cpu-20ms-chain-5 --runs 60 --procs "$p" --self-contained --backend memory
  done
done

# (f) the shared-memory work queue's hand-off rate (benchmarks/workqueue_bench.py)
if [ -f benchmarks/workqueue_bench.py ]; then
  echo "python benchmarks/workqueue_bench.py --runs 3 --out $OUT/workqueue.json" >> "$OUT/commands.txt"
  echo "[$(date -u +%H:%M:%S)] f: workqueue_bench" >&2
  "$PY" benchmarks/workqueue_bench.py --runs 3 --out "$OUT/workqueue.json" > "$OUT/workqueue.md" 2>> "$OUT/stderr.log" \
    || echo "FAILED: workqueue_bench" | tee -a "$OUT/failures.txt" >&2
fi

# Profiles of the hot paths (py-spy, whole worker tree, measured phase only)
if [ "$PROFILE" = 1 ]; then
  mkdir -p "$OUT/profiles"
  first=${BACKENDS%% *}
  case $first in *ddblocal) warm=(--warmup "$DDBLOCAL_WARMUP") ;; *) warm=() ;; esac
  lt "profiles/d__memory" --workload chain --length 10 --runs 3000 --procs 2 --self-contained --backend memory \
    --profile "$OUT/profiles/d__memory.folded"
  lt "profiles/b__${first}" --workload diamond --width 8 --runs 50 --concurrency 10 --procs 2 \
    --self-contained --backend "$first" "${warm[@]}" --profile "$OUT/profiles/b__${first}.folded"
  lt "profiles/e__${first}" --workload chain --length 10 --runs 20 --concurrency 1 --warmup 3 --procs 2 \
    --self-contained --backend "$first" "${warm[@]}" --profile "$OUT/profiles/e__${first}.folded"
  lt "profiles/c__${first}-p2" --blueprint lt-cpu-50ms-chain-5 --runs 24 --concurrency 6 --warmup 6 --procs 2 \
    --self-contained --backend "$first" "${warm[@]}" --profile "$OUT/profiles/c__${first}-p2.folded"
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
"$PY" benchmarks/summarize.py "$OUT" > "$OUT/summary.md"
echo "wrote $OUT/summary.md" >&2
