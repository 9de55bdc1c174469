"""Local AWS-compatible servers (SQS, DynamoDB) on 127.0.0.1: no AWS account, no Docker.

    with start_local_aws() as aws:          # ministack: SQS + DynamoDB in one process
        os.environ.update(aws.env())        # boto3 now talks to it

A server is installed on first use into `emulators_home()` (see install.py), started on a
free port, polled with real boto3 calls until it answers, and stopped by its process group
(SIGTERM, then SIGKILL). The child also gets SIGKILL from the kernel when the thread that
started it dies (PR_SET_PDEATHSIG), so a crashed or killed test run leaves no server behind.
Start servers from a thread that outlives them (the main thread, normally).

Startup measured on the project machine (2 cores, Python 3.11.7, Java 17, 2026-11) from
`LocalServer.start()` to every probe answering, installs already done (load average ~1.5;
a busier machine can take 2-3x longer):
  ministack 1.5.33   median 0.33 s (0.30-0.37, 10 runs; 0.36-0.48 s in earlier runs)
  moto 5.2.5         median 0.47 s (0.43-0.57, 10 runs)
  DynamoDB Local 3.3 median 1.53 s (1.35-1.71, 5 runs, in a netns; a cold JVM)
  fauxqs 1.9.2       median 0.31 s (0.26-0.38, 5 runs, in a netns)
First use adds the install: ~8 s for ministack's venv with a warm pip cache.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .backends import DYNAMODB, LOCALHOST, SQS, LocalServerError, backend, check_allowed_here
from .install import ensure_installed

REGION = "us-east-1"
DEFAULT_BACKEND = "ministack"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}

# A cold JVM on a busy 2-core machine is the slowest start seen (DynamoDB Local, ~2-6 s);
# a minute is far beyond that, yet still fails a hung server within one test's timeout.
DEFAULT_START_TIMEOUT_S = 60.0
# Between readiness probes: short, as a local server answers within a second.
POLL_INTERVAL_S = 0.05
# A probe against loopback connects at once or not at all; a read can wait on a busy JVM.
PROBE_CONNECT_TIMEOUT_S = 1.0
PROBE_READ_TIMEOUT_S = 5.0
# How long SIGTERM gets before SIGKILL: every server here stops within ~1 s.
STOP_GRACE_S = 10.0
# A port that was free when we probed it can be taken before the server binds it (the
# machine's ephemeral client ports overlap): retry with a new port this many times.
PORT_ATTEMPTS = 5
# How much of the server's log an error message quotes.
LOG_TAIL_CHARS = 3000
# What servers print when their port is taken (ministack, Python, Node, Java).
PORT_IN_USE_MARKERS = ("address already in use", "eaddrinuse", "bindexception", "already in use")

# prctl(2) option: the signal the kernel sends the child when its parent thread dies.
PR_SET_PDEATHSIG = 1
# Looked up in the parent: dlopen/dlsym in a forked child of a threaded process can deadlock.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

_running: set[LocalServer] = set()


class _PortTaken(Exception):
    """The server exited because another process took its port first."""


def free_port() -> int:
    """A port that is free on 127.0.0.1 right now (the kernel picks it for port 0)."""
    with socket.socket() as s:
        try:
            s.bind((LOCALHOST, 0))
        except OSError as exc:
            raise LocalServerError(
                f"cannot bind {LOCALHOST} ({exc}); is the loopback interface up? "
                "(in a fresh network namespace: ip link set lo up)") from exc
        return s.getsockname()[1]


def _die_with_parent(parent_pid: int):
    """preexec_fn: have the kernel SIGKILL the server when its starter dies."""

    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class LocalServer:
    """One local server process: `start()` installs, launches and waits; `stop()` ends it."""

    def __init__(self, backend_name: str, *, home: Path | None = None,
                 start_timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        self.backend = backend(backend_name)
        self.home = home
        self.start_timeout_s = start_timeout_s
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_dir: Path | None = None

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def services(self) -> frozenset[str]:
        return self.backend.services

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise LocalServerError(f"{self.name} is not started")
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> LocalServer:
        check_allowed_here(self.backend)
        folder = ensure_installed(self.name, self.home)
        for _ in range(PORT_ATTEMPTS):
            self._launch(folder, free_port())
            try:
                self._wait_ready()
                return self
            except _PortTaken:
                self.stop()
            except BaseException:
                self.stop()
                raise
        raise LocalServerError(f"{self.name}: its port was taken {PORT_ATTEMPTS} times in a row")

    def _launch(self, folder: Path, port: int) -> None:
        argv, extra_env = self.backend.command(folder, port)
        self.port = port
        self._run_dir = Path(tempfile.mkdtemp(prefix=f"flowcraft-{self.name}-"))
        # TMPDIR: ministack writes a PID file there; keep it out of the shared /tmp.
        env = {**os.environ, **extra_env, "TMPDIR": str(self._run_dir)}
        with open(self._log_path(), "wb") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=self._run_dir, start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()))
        _running.add(self)

    def _log_path(self) -> Path:
        assert self._run_dir is not None
        return self._run_dir / "server.log"

    def log_tail(self) -> str:
        try:
            return self._log_path().read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except (OSError, AssertionError):
            return ""

    def _wait_ready(self) -> None:
        probes = _probes(self.endpoint, self.services)
        deadline = time.monotonic() + self.start_timeout_s
        last_error: Exception | None = None
        while probes:
            assert self._proc is not None
            if self._proc.poll() is not None:
                self._raise_exited()
            for service, probe in list(probes.items()):
                try:
                    probe()
                    del probes[service]
                except Exception as exc:  # any failure means "not yet"
                    last_error = exc
            if probes and time.monotonic() > deadline:
                raise LocalServerError(
                    f"{self.name} did not answer on {self.endpoint} within "
                    f"{self.start_timeout_s:.0f} s (last error: {last_error}); its log ends:\n"
                    f"{self.log_tail()}")
            if probes:
                time.sleep(POLL_INTERVAL_S)

    def _raise_exited(self) -> None:
        tail = self.log_tail()
        if any(marker in tail.lower() for marker in PORT_IN_USE_MARKERS):
            raise _PortTaken()
        assert self._proc is not None
        raise LocalServerError(
            f"{self.name} exited with code {self._proc.returncode} while starting on port "
            f"{self.port}; its log ends:\n{tail}")

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it after STOP_GRACE_S; idempotent."""
        proc, self._proc = self._proc, None
        _running.discard(self)
        if proc is not None:
            _terminate_group(proc)
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalServer({self.name!r}, port={self.port}, pid={self.pid})"


def _terminate_group(proc: subprocess.Popen[bytes]) -> None:
    # start_new_session made the server a group leader: its group id is its PID.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(STOP_GRACE_S)
    # Also reaps anything the server forked that outlived it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(STOP_GRACE_S)


def _probes(endpoint: str, services: frozenset[str]) -> dict[str, Callable[[], object]]:
    """One cheap real call per service the server offers; it answers once it is ready."""
    import boto3  # here, so `python -m flowcraft_sqs.local install` works without boto3
    from botocore.config import Config

    config = Config(connect_timeout=PROBE_CONNECT_TIMEOUT_S, read_timeout=PROBE_READ_TIMEOUT_S,
                    retries={"max_attempts": 1, "mode": "standard"})
    session = boto3.session.Session(region_name=REGION, aws_access_key_id="test",
                                    aws_secret_access_key="test")
    probes: dict[str, Callable[[], object]] = {}
    if SQS in services:
        probes[SQS] = session.client(SQS, endpoint_url=endpoint, config=config).list_queues
    if DYNAMODB in services:
        probes[DYNAMODB] = session.client(DYNAMODB, endpoint_url=endpoint,
                                          config=config).list_tables
    return probes


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        server.stop()


@dataclass
class LocalAws:
    """Running local SQS and DynamoDB endpoints; `env()` points boto3 at them."""

    sqs_endpoint: str
    dynamodb_endpoint: str
    servers: tuple[LocalServer, ...] = field(default_factory=tuple)
    region: str = REGION

    def env(self) -> dict[str, str]:
        """Environment for boto3 (and child processes); dummy keys only if none are set."""
        env = {
            "AWS_ENDPOINT_URL_SQS": self.sqs_endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }
        if "AWS_ACCESS_KEY_ID" not in os.environ and "AWS_PROFILE" not in os.environ:
            env.update(DUMMY_CREDENTIALS)
        return env

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> LocalAws:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def resolve_backends(backend_name: str = DEFAULT_BACKEND, sqs_backend: str | None = None,
                     ddb_backend: str | None = None) -> tuple[str, str]:
    """(SQS backend, DynamoDB backend): explicit ones, else `backend_name` if it offers the
    service, else ministack (so "dynamodb-local" means ministack SQS + DynamoDB Local)."""
    chosen = []
    for service, explicit in ((SQS, sqs_backend), (DYNAMODB, ddb_backend)):
        name = explicit or backend_name
        if service not in backend(name).services:
            if explicit:
                raise LocalServerError(f"{explicit} does not serve {service}")
            name = DEFAULT_BACKEND
        chosen.append(name)
    return chosen[0], chosen[1]


def start_local_aws(backend: str = DEFAULT_BACKEND, sqs_backend: str | None = None,
                    ddb_backend: str | None = None, *, home: Path | None = None,
                    start_timeout_s: float = DEFAULT_START_TIMEOUT_S) -> LocalAws:
    """Start local SQS and DynamoDB (one process when one backend serves both)."""
    sqs_name, ddb_name = resolve_backends(backend, sqs_backend, ddb_backend)
    names = list(dict.fromkeys((sqs_name, ddb_name)))  # unique, in order
    servers = [LocalServer(n, home=home, start_timeout_s=start_timeout_s) for n in names]
    for server in servers:  # refuse before starting anything
        check_allowed_here(server.backend)
    started: list[LocalServer] = []
    try:
        for server in servers:
            started.append(server.start())
    except BaseException:
        for server in started:
            server.stop()
        raise
    by_name = {s.name: s for s in servers}
    return LocalAws(by_name[sqs_name].endpoint, by_name[ddb_name].endpoint, tuple(servers))
