"""Shared test setup: a per-test timeout, and real local AWS servers for `aws` tests.

Backend: env FLOWCRAFT_TEST_BACKEND (default ministack):
  ministack       SQS + DynamoDB from one ministack process (127.0.0.1)
  moto            SQS + DynamoDB from moto_server (127.0.0.1)
  dynamodb-local  SQS from ministack + DynamoDB from AWS's DynamoDB Local; DynamoDB Local binds
                  every interface, so it runs only in a loopback-only network namespace:
                  unshare -n sh -c 'ip link set lo up && FLOWCRAFT_TEST_BACKEND=dynamodb-local \
                      .venv/bin/python -m pytest -q -m aws'
  Outside such a namespace its tests are skipped, or fail with FLOWCRAFT_TEST_REQUIRE_BACKEND=1.

Fixtures: `aws_backend` (the name), `local_aws` (servers, one set per session), `aws_clients`
(`.sqs`, `.dynamodb`), `make_infra(**overrides)` and `infra` (a fresh queue + DLQ + three
tables with unique names per test, deleted afterwards). Tests using them get the `aws` mark.
Servers are installed (first run only) before the first test, outside any test's timeout.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

BACKEND_ENV = "FLOWCRAFT_TEST_BACKEND"
REQUIRE_ENV = "FLOWCRAFT_TEST_REQUIRE_BACKEND"
DEFAULT_TEST_BACKEND = "ministack"
# test backend -> (SQS server, DynamoDB server)
TEST_BACKENDS = {
    "ministack": ("ministack", "ministack"),
    "moto": ("moto", "moto"),
    "dynamodb-local": ("ministack", "dynamodb-local"),
}
AWS_FIXTURES = {"local_aws", "aws_clients", "make_infra", "infra"}

# Per test, when neither pyproject (`timeout = 120`), --timeout nor PYTEST_TIMEOUT sets one:
# a hung network call must fail its test, never the whole CI run.
DEFAULT_TEST_TIMEOUT_S = 120
# Servers here start in 0.4-2 s; 30 s fails a broken one fast, yet tolerates a loaded machine.
SERVER_START_TIMEOUT_S = 30.0
# Loopback connects at once or never; reads must outlast SQS's longest long poll (20 s).
CLIENT_CONNECT_TIMEOUT_S = 2.0
CLIENT_READ_TIMEOUT_S = 30.0
# A retry or two hides a rare dropped loopback connection, not a broken server.
CLIENT_MAX_ATTEMPTS = 3
DUMMY_KEY = "test"

_INSTALL_ERROR = pytest.StashKey[str]()


@dataclass(frozen=True)
class AwsClients:
    sqs: Any
    dynamodb: Any


def selected_backend() -> str:
    return os.environ.get(BACKEND_ENV) or DEFAULT_TEST_BACKEND


def pytest_configure(config: pytest.Config) -> None:
    if selected_backend() not in TEST_BACKENDS:
        raise pytest.UsageError(f"{BACKEND_ENV}={selected_backend()!r}; "
                                f"choose one of {', '.join(TEST_BACKENDS)}")


@pytest.hookimpl(tryfirst=True)  # before `-m aws` deselects by the mark added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    add_timeout = not _timeout_configured(config)
    for item in items:
        if AWS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.aws)
        if add_timeout and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT_S))


def _timeout_configured(config: pytest.Config) -> bool:
    try:
        ini = config.getini("timeout")
    except ValueError:  # pytest-timeout is not installed: nothing would read the mark anyway
        return True
    return bool(ini or config.getoption("timeout", None) or os.environ.get("PYTEST_TIMEOUT"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Install the servers now if any selected test needs them (pip/npm can take minutes)."""
    if session.config.option.collectonly:
        return
    if not any(AWS_FIXTURES & set(getattr(i, "fixturenames", ())) for i in session.items):
        return
    from flowcraft_sqs.local import BACKENDS, ensure_installed, in_loopback_only_netns

    for name in dict.fromkeys(TEST_BACKENDS[selected_backend()]):
        if BACKENDS[name].binds_all_interfaces and not in_loopback_only_netns():
            continue  # local_aws skips (or fails) with the reason
        try:
            ensure_installed(name)
        except Exception as exc:  # reported by local_aws, in each test that needs it
            session.config.stash[_INSTALL_ERROR] = f"installing {name} failed: {exc}"
            return


@pytest.fixture(scope="session")
def aws_backend() -> str:
    return selected_backend()


@pytest.fixture(scope="session")
def local_aws(request: pytest.FixtureRequest, aws_backend: str) -> Iterator[Any]:
    from flowcraft_sqs.local import (
        BACKENDS,
        EmulatorInstallError,
        LocalServerError,
        in_loopback_only_netns,
        start_local_aws,
    )

    sqs_name, ddb_name = TEST_BACKENDS[aws_backend]
    if any(BACKENDS[n].binds_all_interfaces for n in (sqs_name, ddb_name)) and \
            not in_loopback_only_netns():
        reason = (f"{BACKEND_ENV}={aws_backend} needs a loopback-only network namespace "
                  "(its server binds every interface): run under "
                  "unshare -n sh -c 'ip link set lo up && ...'")
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    install_error = request.config.stash.get(_INSTALL_ERROR, None)
    if install_error:
        pytest.fail(install_error, pytrace=False)
    try:
        aws = start_local_aws(sqs_backend=sqs_name, ddb_backend=ddb_name,
                              start_timeout_s=SERVER_START_TIMEOUT_S)
    except (LocalServerError, EmulatorInstallError) as exc:
        pytest.fail(f"local AWS backend {aws_backend!r} did not start: {exc}", pytrace=False)
    yield aws
    aws.stop()


@pytest.fixture(scope="session")
def aws_clients(local_aws: Any) -> AwsClients:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=CLIENT_CONNECT_TIMEOUT_S, read_timeout=CLIENT_READ_TIMEOUT_S,
                    retries={"max_attempts": CLIENT_MAX_ATTEMPTS, "mode": "standard"})
    session = boto3.session.Session(aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY,
                                    region_name=local_aws.region)
    return AwsClients(
        sqs=session.client("sqs", endpoint_url=local_aws.sqs_endpoint, config=config),
        dynamodb=session.client("dynamodb", endpoint_url=local_aws.dynamodb_endpoint,
                                config=config),
    )


@pytest.fixture
def make_infra(aws_clients: AwsClients) -> Iterator[Callable[..., Any]]:
    """`make_infra(**overrides)`: ensure_infrastructure with unique names; deleted after."""
    from flowcraft_sqs.infra import delete_infrastructure, ensure_infrastructure

    made = []

    def make(**overrides: Any) -> Any:
        prefix = f"fc-test-{uuid.uuid4().hex[:12]}"
        names = {
            "queue_name": f"{prefix}-jobs",
            "dlq_name": f"{prefix}-dlq",
            "context_table": f"{prefix}-contexts",
            "status_table": f"{prefix}-statuses",
            "coordination_table": f"{prefix}-coordination",
        }
        infra = ensure_infrastructure(aws_clients.sqs, aws_clients.dynamodb,
                                      **{**names, **overrides})
        made.append(infra)
        return infra

    yield make
    for infra in made:
        delete_infrastructure(aws_clients.sqs, aws_clients.dynamodb, infra)


@pytest.fixture
def infra(make_infra: Callable[..., Any]) -> Any:
    """A fresh queue + DLQ + three tables with the default settings and unique names."""
    return make_infra()
