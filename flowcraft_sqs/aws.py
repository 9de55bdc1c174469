"""boto3 clients for SQS and DynamoDB, and the counter of the requests they make.

Credentials come only from boto3's normal chain (environment, profile, instance or task
role). Endpoints given here win; otherwise none is set, so boto3 itself honours
`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SQS` and `AWS_ENDPOINT_URL_DYNAMODB` (local
servers, VPC endpoints).

`RequestCounter` is the project's headline cost figure (AWS bills per request), so it
counts on botocore's own events and is exact: `before-call` fires once per logical API
call, `before-send` once per HTTP attempt, retries included.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import boto3
from botocore.config import Config

DEFAULT_REGION: Final = "us-east-1"  # the seed document's default
CONNECT_TIMEOUT_S: Final = 5  # a healthy endpoint accepts a connection in well under a second
# Must exceed SQS's longest long poll (20 s): ReceiveMessage holds the response that long.
READ_TIMEOUT_S: Final = 30
MAX_ATTEMPTS: Final = 5  # per call, the first included; botocore "standard" mode retries throttling, 5xx, dropped connections
# A worker's node coroutines, its commit threads and its poller share one client per service.
DEFAULT_MAX_POOL_CONNECTIONS: Final = 32


@dataclass(frozen=True)
class AwsClients:
    sqs: Any
    dynamodb: Any


def resolve_region(region: str | None = None) -> str:
    """The region argument, else AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1."""
    return (
        region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )


def client_config(max_pool_connections: int = DEFAULT_MAX_POOL_CONNECTIONS) -> Config:
    return Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        tcp_keepalive=True,  # long-lived worker connections through NAT gateways and load balancers
        max_pool_connections=max_pool_connections,
    )


def make_clients(
    region: str | None = None,
    endpoint_url: str | None = None,
    sqs_endpoint_url: str | None = None,
    dynamodb_endpoint_url: str | None = None,
    max_pool_connections: int = DEFAULT_MAX_POOL_CONNECTIONS,
    counter: RequestCounter | None = None,
) -> AwsClients:
    """One SQS and one DynamoDB client (both thread-safe), from one boto3 Session."""
    session = boto3.session.Session(region_name=resolve_region(region))
    config = client_config(max_pool_connections)
    sqs = _client(session, "sqs", sqs_endpoint_url or endpoint_url, config)
    dynamodb = _client(session, "dynamodb", dynamodb_endpoint_url or endpoint_url, config)
    if counter is not None:
        counter.attach(sqs)
        counter.attach(dynamodb)
    return AwsClients(sqs=sqs, dynamodb=dynamodb)


def _client(session: Any, service: str, endpoint_url: str | None, config: Config) -> Any:
    kwargs: dict[str, Any] = {"config": config}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url  # unset: boto3 reads AWS_ENDPOINT_URL[_SERVICE]
    return session.client(service, **kwargs)


class RequestCounter:
    """Thread-safe counts of AWS requests by operation, e.g. `"SQS.ReceiveMessage"`.

    `snapshot()` counts HTTP requests (every attempt, retries included: what AWS bills and
    throttles); `calls()` counts logical API calls. Attach it to any botocore client.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._calls: Counter[str] = Counter()
        self._attached: weakref.WeakSet[Any] = weakref.WeakSet()

    def attach(self, client: Any) -> Any:
        """Count `client`'s requests from now on (attaching twice counts once); returns it."""
        with self._lock:
            if client in self._attached:
                return client
            self._attached.add(client)
        label = client.meta.service_model.service_id  # "SQS", "DynamoDB"
        events = client.meta.events
        events.register("before-call", lambda event_name, **_: self._add(self._calls, label, event_name))
        events.register("before-send", lambda event_name, **_: self._add(self._requests, label, event_name))
        return client

    def _add(self, counter: Counter[str], label: str, event_name: str) -> None:
        # event_name is "before-send.sqs.ReceiveMessage". Returning None matters: a
        # before-send handler that returns a value replaces the HTTP response.
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            counter[f"{label}.{operation}"] += 1

    def snapshot(self) -> dict[str, int]:
        """HTTP requests per operation, retries included."""
        with self._lock:
            return dict(self._requests)

    def calls(self) -> dict[str, int]:
        """Logical API calls per operation (each may have taken several HTTP attempts)."""
        with self._lock:
            return dict(self._calls)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._requests.values())

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._calls.clear()


def requests_per_node(counter: RequestCounter, nodes: int) -> dict[str, float]:
    """HTTP requests per node execution, by operation, plus `"total"`: the cost figure."""
    if nodes <= 0:
        raise ValueError("nodes must be positive")
    counts = counter.snapshot()
    per_node = {operation: count / nodes for operation, count in sorted(counts.items())}
    per_node["total"] = sum(counts.values()) / nodes
    return per_node
