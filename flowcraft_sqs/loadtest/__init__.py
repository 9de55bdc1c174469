"""Load-test harness: workloads, a load generator, and reports of throughput, latency, AWS
requests, DynamoDB units and cost per node execution.

    flowcraft-sqs loadtest --workload chain --length 10 --runs 50 --self-contained --procs 2

Modules: workloads (blueprints and node implementations, pure), app (the worker's --app),
runner (drives the load), report (figures, JSON, Markdown; pure), plots (PNG, optional),
meter (capacity units and bytes per AWS call), memseed (--backend memory), procroles (which
worker process is an executor, for RSS per executor), progress, cli.
"""

from .cli import register

__all__ = ["register"]
