"""Command line: `flowcraft-worker` and the `flowcraft-sqs` command group.

    flowcraft-worker --procs 4 --app myflows.worker:app --queue-url https://sqs...

Every option can also come from the environment: FLOWCRAFT_<OPTION> (e.g. FLOWCRAFT_PROCS,
FLOWCRAFT_VISIBILITY_TIMEOUT), which is how the systemd unit's EnvironmentFile configures
it; the queue URL and region also fall back to SQS_QUEUE_URL and AWS_REGION, as in the seed
document. This module only parses, validates and hands off to `Supervisor`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from . import __version__, logs
from .config import BACKENDS, LOG_FORMATS, LOG_LEVELS, Settings, default_procs
from .errors import EXIT_CONFIG, ConfigError
from .slots import DEFAULT_CONCURRENCY, DEFAULT_THREADS

CONTEXT_SETTINGS: dict[str, Any] = {
    "auto_envvar_prefix": "FLOWCRAFT",
    "help_option_names": ["-h", "--help"],
    "max_content_width": 100,
    "show_default": True,
}


def _option(*decls: str, **kwargs: Any) -> Any:
    return click.option(*decls, show_envvar=True, **kwargs)


_OPTIONS = [
    _option("--app", required=True, metavar="MODULE[:ATTR]",
            help="Your workflows: a module (or module:attr) providing `registry` and `blueprints`."),
    _option("--procs", "-p", type=click.IntRange(min=1), default=default_procs, show_default="CPUs",
            help="Executor processes: CPU parallelism (one per CPU; more only for sync nodes that hold the GIL)."),
    _option("--concurrency", "-c", type=click.IntRange(min=1), default=DEFAULT_CONCURRENCY,
            help="Nodes in flight per executor: async nodes run as tasks on its event loop. "
                 "Async I/O nodes (LLM, HTTP): raise it (a waiting node costs a few KB). "
                 "CPU-bound nodes: it does not matter, use --threads 1."),
    _option("--threads", "-t", type=click.IntRange(min=1), default=DEFAULT_THREADS,
            help="Sync nodes in flight per executor, in a thread pool. Blocking I/O (requests, "
                 "DB drivers): raise it to the waits you want overlapped (e.g. 16-64). "
                 "CPU-bound: 1, and --procs as many as CPUs."),
    _option("--receivers", "-r", type=click.IntRange(min=1), default=1,
            help="Receiver processes (each owns an SQS poller and a commit pipeline)."),
    _option("--queue-url", envvar=["FLOWCRAFT_QUEUE_URL", "SQS_QUEUE_URL"], default="",
            show_default=False, help="The SQS queue of jobs."),
    _option("--context-table", default="flowcraft-contexts", help="DynamoDB table of run contexts."),
    _option("--status-table", default="flowcraft-statuses", help="DynamoDB table of run statuses."),
    _option("--coordination-table", default="flowcraft-coordination",
            help="DynamoDB table for coordination."),
    _option("--region", envvar=["FLOWCRAFT_REGION", "AWS_REGION"], default=None,
            help="AWS region [default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1]."),
    _option("--sqs-endpoint-url", default=None,
            help="SQS endpoint (local servers); normally boto3's AWS_ENDPOINT_URL_SQS."),
    _option("--dynamodb-endpoint-url", default=None,
            help="DynamoDB endpoint; normally boto3's AWS_ENDPOINT_URL_DYNAMODB."),
    _option("--wait-time", type=int, default=20, help="SQS long poll, seconds (max 20)."),
    _option("--receive-batch", type=int, default=10, help="Messages per ReceiveMessage (max 10)."),
    _option("--visibility-timeout", type=int, default=60,
            help="Seconds a received message stays hidden; extended while its node runs."),
    _option("--lease-fraction", type=float, default=0.5,
            help="Extend a message's visibility once this fraction of it has passed."),
    _option("--prefetch", type=int, default=None, show_default="procs/4, at least 4",
            help="Work items admitted beyond the executors' slots (held messages hide latency)."),
    _option("--flush-max-items", type=int, default=10,
            help="Flush sends/statuses/deletes once this many messages are finished..."),
    _option("--flush-max-age", type=int, default=50,
            help="...or once the oldest finished message waited this many milliseconds."),
    _option("--graceful-timeout", type=float, default=30.0,
            help="Seconds a stop (SIGTERM) may take before stragglers are killed."),
    _option("--max-nodes-per-executor", type=int, default=0,
            help="Replace an executor after this many nodes (0: never)."),
    _option("--max-memory-per-executor", type=int, default=0,
            help="Replace an executor whose RSS passes this many MB (0: never)."),
    _option("--pulse-timeout", type=float, default=30.0,
            help="Seconds of silence after which a child is killed and replaced."),
    _option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port."),
    _option("--metrics-host", default="127.0.0.1", help="Address for --metrics-port."),
    _option("--metrics-interval", type=float, default=60.0,
            help="Seconds between metric summaries in the log."),
    _option("--log-format", type=click.Choice(LOG_FORMATS), default="text", help="Log lines as text or JSON."),
    _option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default="INFO",
            help="Least severe level logged."),
    _option("--local-continuation/--no-local-continuation", default=True,
            help="Run a finished node's next node here instead of round-tripping it through SQS."),
    _option("--backend", type=click.Choice(BACKENDS), default="aws",
            help="aws: SQS + DynamoDB; memory: in-process queue and tables (overhead benchmarks)."),
    _option("--memory-seed", default=None, metavar="MODULE:ATTR",
            help="With --backend memory: a callable run in each receiver to seed runs."),
]


#: Option names that differ from their Settings field (the field carries the unit).
_FIELD_NAMES = {
    "wait_time": "wait_time_s",
    "visibility_timeout": "visibility_timeout_s",
    "flush_max_age": "flush_max_age_ms",
    "graceful_timeout": "graceful_timeout_s",
    "max_memory_per_executor": "max_memory_per_executor_mb",
    "pulse_timeout": "pulse_timeout_s",
    "metrics_interval": "metrics_interval_s",
}


def settings_from_options(options: dict[str, Any]) -> Settings:
    """Settings from parsed options, validated (ConfigError says how to fix a value)."""
    return Settings(**{_FIELD_NAMES.get(k, k): v for k, v in options.items()}).validate()


def worker_options(command: Any) -> Any:
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


@click.command(context_settings=CONTEXT_SETTINGS)
@worker_options
@click.version_option(__version__, "--version")
def worker(**options: Any) -> None:
    """Run Flowcraft workflows from an SQS queue with a supervised pool of processes.

    Receivers long-poll SQS only when executors have room, commit each node's result to
    DynamoDB, send its successors and then delete its message. Executors run the nodes.
    SIGTERM stops gracefully within --graceful-timeout; a second Ctrl-C stops at once.
    """
    try:
        settings = settings_from_options(options)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    from .supervisor import Supervisor

    logs.setup("supervisor", -1, settings.log_format, settings.log_level)
    sys.exit(Supervisor(settings).run())


def worker_main() -> None:
    """Entry point of `flowcraft-worker`."""
    worker(prog_name="flowcraft-worker")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version")
def main() -> None:
    """flowcraft-sqs: run Flowcraft workflows on AWS SQS and DynamoDB."""


main.add_command(worker, name="worker")


def _register_subcommands() -> None:
    # `infra` and `demo` live in their own modules; they import boto3 only when run.
    from . import authoring_cli, demo, infra_cli
    from .loadtest import register as register_loadtest  # `loadtest`: flowcraft_sqs/loadtest/cli.py

    infra_cli.register(main)
    demo.register(main)
    register_loadtest(main)
    authoring_cli.register(main)  # `lint` and `graph`: flowcraft_sqs/authoring_cli.py


_register_subcommands()
