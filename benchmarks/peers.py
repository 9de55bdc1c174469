"""Peer comparison for benchmarks (g) and (h): Dramatiq draining the same I/O-bound nodes
from a backlog on the same kind of local SQS server as `flowcraft-sqs loadtest`.

    .venv/bin/python benchmarks/peers.py --kind async --node-ms 1000 --messages 200 \
        --out benchmarks/out/x/gpeer__dramatiq-ministack__r1

Starts its own local server (like `flowcraft-sqs loadtest --self-contained`), writes the
backlog (SendMessageBatch, Dramatiq's own message encoding) before the workers start, runs
`dramatiq -p 2 benchmarks/dramatiq_app.py` with Dramatiq's default threads (8 per process;
async actors through its AsyncIO middleware), and waits until every node has recorded its
start and end. Figures are computed with the load-test report's own functions (steady rate
over the middle 80% of completions, nodes in flight), so both sides are measured alike.

Needs the `bench` extra: pip install 'flowcraft-sqs[bench]' (dramatiq, dramatiq-sqs).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from flowcraft_sqs.loadtest import report
from flowcraft_sqs.loadtest.runner import environment

HERE = Path(__file__).resolve().parent
ACTORS = {"async": "await_node", "sync": "block_node"}
SAMPLE_S = 0.25  # how often RSS is sampled and completions are counted
STOP_TIMEOUT_S = 20.0


def encoded_messages(kind: str, node_ms: int, count: int, env: dict[str, str]) -> list[str]:
    """`count` Dramatiq messages for the actor of `kind`, encoded as dramatiq_sqs sends them."""
    os.environ.update(env)  # the broker module reads its endpoint and namespace at import
    sys.path.insert(0, str(HERE))
    import dramatiq_app

    actor = getattr(dramatiq_app, ACTORS[kind])
    return [base64.b64encode(actor.message(node_ms).encode()).decode() for _ in range(count)]


def write_backlog(sqs: Any, queue_url: str, bodies: list[str]) -> None:
    for i in range(0, len(bodies), 10):
        batch = [{"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i:i + 10])]
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=batch)
        if response.get("Failed"):
            raise RuntimeError(f"SendMessageBatch refused {response['Failed'][:1]}")


def read_intervals(times_dir: Path) -> list[tuple[float, float]]:
    out = []
    for path in times_dir.iterdir():
        for line in path.read_text().splitlines():
            start, end = line.split()
            out.append((float(start), float(end)))
    return out


def count_lines(times_dir: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in times_dir.iterdir())


def sample_rss(root: int, peaks: dict[int, int]) -> None:
    """Peak RSS of each child of `root` (Dramatiq's worker processes)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(root).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                peaks[child.pid] = max(peaks.get(child.pid, 0), child.memory_info().rss)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker group this script started, SIGKILL it if it overstays."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def drain(args: argparse.Namespace, env: dict[str, str], times_dir: Path) -> dict[str, Any]:
    """Start the Dramatiq workers on the written backlog; wait for every node (bounded)."""
    # The broker module comes first: --path takes every word after it.
    argv = [str(Path(sys.executable).with_name("dramatiq")), "dramatiq_app", "-p", str(args.processes),
            *(["-t", str(args.threads)] if args.threads else []),
            "--worker-shutdown-timeout", "5000", "--path", str(HERE)]
    log = open(times_dir.parent / "dramatiq.log", "wb")  # noqa: SIM115 (closed below)
    started = time.time()
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    peaks: dict[int, int] = {}
    deadline = time.monotonic() + args.timeout
    done = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            sample_rss(proc.pid, peaks)
            done = count_lines(times_dir)
            if done >= args.messages:
                break
            time.sleep(SAMPLE_S)
    finally:
        stop_group(proc)
        log.close()
    tail = (times_dir.parent / "dramatiq.log").read_text(errors="replace")[-1500:]
    return {"argv": argv, "started": started, "done": done, "peaks": peaks, "exit_code": proc.returncode,
            "log_tail": tail if done < args.messages else ""}


def build(args: argparse.Namespace, run: dict[str, Any], intervals: list[tuple[float, float]],
          backend: str, seed_s: float) -> dict[str, Any]:
    ends = [e for _, e in intervals]
    first = min((s for s, _ in intervals), default=run["started"])
    peaks = sorted(run["peaks"].values(), reverse=True)
    return {
        "title": f"Dramatiq {ACTORS[args.kind]} ({args.node_ms} ms), backlog of {args.messages}",
        "meta": {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "command": " ".join(sys.argv), "environment": environment(),
                 "dramatiq": _version("dramatiq"), "dramatiq_sqs": _version("dramatiq-sqs")},
        "target": {"framework": "dramatiq", "backend": backend, "processes": args.processes,
                   "threads": args.threads or "default (8)", "worker_command": " ".join(run["argv"])},
        "throughput": {"runs": args.messages, "completed": len(intervals),
                       "node_executions": len(intervals),
                       "steady_node_executions_per_s": report.steady_rate(ends),
                       "node_executions_per_s": len(intervals) / (max(ends) - first) if ends else None,
                       "backlog_write_s": seed_s, "first_node_after_start_s": first - run["started"]},
        "in_flight": report.in_flight(intervals),
        "resources": {"worker_peak_rss_by_role": {"dramatiq worker": peaks}},
        "notes": [f"{len(intervals)} of {args.messages} nodes finished; log tail:\n{run['log_tail']}"]
        if run["log_tail"] else [],
    }


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def to_markdown(r: dict[str, Any]) -> str:
    t, f = r["throughput"], r["in_flight"]
    rss = r["resources"]["worker_peak_rss_by_role"]["dramatiq worker"]
    return "\n".join([
        f"# {r['title']}", "", f"- Date (UTC): {r['meta']['date_utc']}",
        f"- Command: `{r['meta']['command']}`", f"- Worker: `{r['target']['worker_command']}`",
        f"- dramatiq {r['meta']['dramatiq']}, dramatiq-sqs {r['meta']['dramatiq_sqs']}, "
        f"backend {r['target']['backend']}", "",
        f"steady node executions/s (middle 80%): {t['steady_node_executions_per_s']}; "
        f"completed {t['completed']} of {t['runs']}", "",
        f"nodes in flight: mean (steady) {f['mean_steady']}, peak {f['peak']}", "",
        "peak RSS per worker process (MiB): " + ", ".join(f"{b / 2**20:.1f}" for b in rss), "",
        *[f"- {n}" for n in r["notes"]], ""])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=sorted(ACTORS), default="async")
    p.add_argument("--node-ms", type=int, default=1000)
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="default: Dramatiq's own (8)")
    p.add_argument("--backend", default="ministack", help="a flowcraft_sqs.local SQS backend")
    p.add_argument("--timeout", type=float, default=180.0, help="give up on the drain after this long")
    p.add_argument("--out", required=True, metavar="PREFIX")
    args = p.parse_args()
    if not 1 <= args.messages <= 100_000:
        p.error("--messages must be between 1 and 100,000")

    from flowcraft_sqs.aws import make_clients
    from flowcraft_sqs.local import start_local_aws

    aws = start_local_aws(sqs_backend=args.backend, ddb_backend=args.backend)
    work = Path(tempfile.mkdtemp(prefix="peer-dramatiq-"))
    times_dir = work / "times"
    times_dir.mkdir()
    try:
        namespace = f"peer-{uuid.uuid4().hex[:8]}"
        env = {**aws.env(), "PEER_SQS_ENDPOINT": aws.sqs_endpoint, "PEER_NAMESPACE": namespace,
               "PEER_TIMES_DIR": str(times_dir), "AWS_DEFAULT_REGION": aws.region}
        os.environ.update(env)  # dummy credentials for this process's clients and the broker module
        sqs = make_clients(aws.region, sqs_endpoint_url=aws.sqs_endpoint,
                           dynamodb_endpoint_url=aws.dynamodb_endpoint).sqs
        queue_url = sqs.create_queue(QueueName=f"{namespace}_io")["QueueUrl"]
        t0 = time.time()
        write_backlog(sqs, queue_url, encoded_messages(args.kind, args.node_ms, args.messages, env))
        seed_s = time.time() - t0
        run = drain(args, env, times_dir)
        result = build(args, run, read_intervals(times_dir), args.backend, seed_s)
    finally:
        aws.stop()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(out.name + ".json").write_text(json.dumps(result, indent=2))
    out.with_name(out.name + ".md").write_text(to_markdown(result))
    print(to_markdown(result))
    if result["throughput"]["completed"] < args.messages:
        sys.exit(1)


if __name__ == "__main__":
    main()
