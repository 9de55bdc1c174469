"""`python -m flowcraft_sqs.local install|serve`: install or run the local AWS servers.

    python -m flowcraft_sqs.local install                       # ministack (the default)
    python -m flowcraft_sqs.local install --backend dynamodb-local --backend moto
    python -m flowcraft_sqs.local serve                         # prints `export ...` lines
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import threading

from .backends import BACKENDS, LocalServerError
from .install import EmulatorInstallError, emulators_home, ensure_installed
from .servers import DEFAULT_BACKEND, start_local_aws

ALL = "all"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except (EmulatorInstallError, LocalServerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    names = sorted(BACKENDS)
    parser = argparse.ArgumentParser(prog="python -m flowcraft_sqs.local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True)
    install = sub.add_parser("install", help=f"install servers into {emulators_home()}")
    install.add_argument("--backend", action="append", choices=[*names, ALL],
                         help=f"repeatable; default {DEFAULT_BACKEND}")
    install.set_defaults(func=_install)
    serve = sub.add_parser("serve", help="run local SQS + DynamoDB until Ctrl-C")
    serve.add_argument("--backend", default=DEFAULT_BACKEND, choices=names)
    serve.add_argument("--sqs-backend", choices=names)
    serve.add_argument("--ddb-backend", choices=names)
    serve.set_defaults(func=_serve)
    return parser


def _install(args: argparse.Namespace) -> int:
    wanted = args.backend or [DEFAULT_BACKEND]
    for name in sorted(BACKENDS) if ALL in wanted else dict.fromkeys(wanted):
        print(f"{name}: {ensure_installed(name)}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    # SIGTERM too, so `kill PID` stops the servers as cleanly as Ctrl-C.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with start_local_aws(args.backend, args.sqs_backend, args.ddb_backend) as aws:
        for key, value in aws.env().items():
            print(f"export {key}={shlex.quote(value)}")
        names = ", ".join(f"{s.name} (pid {s.pid})" for s in aws.servers)
        print(f"# running {names}; Ctrl-C to stop", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
