"""`AwsMeter`: bytes, SQS billing chunks and DynamoDB capacity units per AWS operation.

`aws.RequestCounter` counts requests; this meter adds what the bill depends on beyond
the count, from botocore's own events on any client it is attached to:

- every DynamoDB call is sent with `ReturnConsumedCapacity='TOTAL'` and the units DynamoDB
  reports are added up (reads and writes apart). A server that omits them (ministack's
  BatchGetItem) is estimated instead and counted as such: reads from the returned items'
  sizes (4 KB per unit, half for eventually consistent reads), writes from the request size
  (1 KB per unit: a lower bound, since an update is billed on the whole item);
- request and response body bytes per operation, per HTTP attempt;
- calls answered with an error (ConditionalCheckFailed is how a version conflict shows);
- SQS billed requests: AWS bills every 64 KB chunk of a request's payload as one request.

In a worker, `install_in_worker()` (called by the load-test app when
FLOWCRAFT_LOADTEST_METER_DIR is set) meters the clients `aws.make_clients` builds from then on,
and a daemon thread writes the totals to `<dir>/meter-<pid>.json` every half second, so the
harness can read them while the worker runs (children exit with os._exit: no atexit).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import orjson

METER_DIR_ENV: Final = "FLOWCRAFT_LOADTEST_METER_DIR"
DUMP_INTERVAL_S: Final = 0.5
SQS_BILLING_CHUNK_BYTES: Final = 64 * 1024
READ_UNIT_BYTES: Final = 4 * 1024
WRITE_UNIT_BYTES: Final = 1024
DYNAMODB_READS: Final = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
DYNAMODB_CAPACITY_OPS: Final = (
    "GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems",
    "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems",
)
FIELDS: Final = ("calls", "errors", "attempts", "bytes_out", "bytes_in", "sqs_billed",
                 "rru_measured", "wru_measured", "rru_estimated", "wru_estimated",
                 "calls_measured", "calls_estimated")


class AwsMeter:
    """Thread-safe per-operation totals, keyed like RequestCounter ("DynamoDB.UpdateItem")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0.0))
        self._attached: set[int] = set()

    def attach(self, client: Any) -> Any:
        with self._lock:
            if id(client) in self._attached:
                return client
            self._attached.add(id(client))
        service = client.meta.service_model.service_id  # "SQS", "DynamoDB"
        events = client.meta.events
        hyphen = service.hyphenize() if hasattr(service, "hyphenize") else str(service).lower()
        if hyphen == "dynamodb":
            for op in DYNAMODB_CAPACITY_OPS:
                events.register(f"provide-client-params.dynamodb.{op}", _ask_for_capacity)
        events.register(f"before-send.{hyphen}", self._before_send(str(service)))
        events.register(f"after-call.{hyphen}", self._after_call(str(service)))
        return client

    def _before_send(self, service: str) -> Any:
        def handler(request: Any, event_name: str, **_: Any) -> None:
            op = event_name.rsplit(".", 1)[-1]
            body = request.body
            size = len(body) if isinstance(body, (bytes, bytearray, str)) else 0
            with self._lock:
                row = self._ops[f"{service}.{op}"]
                row["attempts"] += 1
                row["bytes_out"] += size
                if service == "SQS":
                    row["sqs_billed"] += max(1, math.ceil(size / SQS_BILLING_CHUNK_BYTES))
            return None  # a value here would replace the HTTP response

        return handler

    def _after_call(self, service: str) -> Any:
        def handler(http_response: Any, parsed: Mapping[str, Any], model: Any,
                    context: Mapping[str, Any], **_: Any) -> None:
            op = model.name
            size = _content_length(http_response)
            rru = wru = 0.0
            measured: bool | None = None
            if service == "DynamoDB" and op in DYNAMODB_CAPACITY_OPS and _ok(http_response):
                units = _reported_units(parsed.get("ConsumedCapacity"))
                if units is not None:
                    measured = True
                    rru, wru = (units, 0.0) if op in DYNAMODB_READS else (0.0, units)
                else:
                    measured = False
                    rru, wru = _estimate(op, parsed, context)
            with self._lock:
                row = self._ops[f"{service}.{op}"]
                row["calls"] += 1
                if not _ok(http_response):  # e.g. ConditionalCheckFailed: a version conflict
                    row["errors"] += 1
                row["bytes_in"] += size
                if measured is True:
                    row["rru_measured"] += rru
                    row["wru_measured"] += wru
                    row["calls_measured"] += 1
                elif measured is False:
                    row["rru_estimated"] += rru
                    row["wru_estimated"] += wru
                    row["calls_estimated"] += 1

        return handler

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {op: dict(row) for op, row in self._ops.items()}


def _ask_for_capacity(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    params.setdefault("ReturnConsumedCapacity", "TOTAL")
    context["lt_params"] = params  # read only if the response has no ConsumedCapacity


def _ok(http_response: Any) -> bool:
    return http_response is not None and getattr(http_response, "status_code", 500) < 300


def _content_length(http_response: Any) -> int:
    if http_response is None:
        return 0
    with contextlib.suppress(Exception):
        return int(http_response.headers.get("content-length") or len(http_response.content or b""))
    return 0


def _reported_units(consumed: Any) -> float | None:
    if isinstance(consumed, Mapping):
        consumed = [consumed]
    if not isinstance(consumed, list) or not consumed:
        return None
    total = 0.0
    for entry in consumed:
        value = entry.get("CapacityUnits") if isinstance(entry, Mapping) else None
        if value is None:
            return None
        total += float(value)
    return total


def _estimate(op: str, parsed: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[float, float]:
    """(read units, write units) for a response without ConsumedCapacity."""
    params = context.get("lt_params") or {}
    if op in DYNAMODB_READS:
        consistent = bool(params.get("ConsistentRead")) or any(
            isinstance(r, Mapping) and r.get("ConsistentRead")
            for r in (params.get("RequestItems") or {}).values())
        per_unit = 1.0 if consistent else 0.5
        items: list[Mapping[str, Any]] = []
        if isinstance(parsed.get("Item"), Mapping):
            items.append(parsed["Item"])
        for table_items in (parsed.get("Responses") or {}).values():
            items.extend(table_items)
        items.extend(parsed.get("Items") or [])
        units = sum(per_unit * max(1, math.ceil(item_bytes(i) / READ_UNIT_BYTES)) for i in items)
        return (units or per_unit), 0.0
    factor = 2.0 if op == "TransactWriteItems" else 1.0
    return 0.0, factor * sum(max(1, math.ceil(n / WRITE_UNIT_BYTES)) for n in _written_bytes(op, params))


def _written_bytes(op: str, params: Mapping[str, Any]) -> list[int]:
    """Bytes each written item carries in the request (a lower bound of its size)."""
    if op == "PutItem":
        return [item_bytes(params.get("Item") or {})]
    if op in ("UpdateItem", "DeleteItem"):
        values = params.get("ExpressionAttributeValues") or {}
        return [item_bytes(params.get("Key") or {}) + item_bytes(values)]
    if op == "BatchWriteItem":
        sizes = []
        for requests in (params.get("RequestItems") or {}).values():
            for r in requests:
                put = r.get("PutRequest", {}).get("Item")
                sizes.append(item_bytes(put) if put else item_bytes(r.get("DeleteRequest", {}).get("Key", {})))
        return sizes or [0]
    if op == "TransactWriteItems":
        return [1] * max(1, len(params.get("TransactItems") or []))
    return [0]


def item_bytes(item: Mapping[str, Any]) -> int:
    from ..values import attribute_size

    return sum(attribute_size(name, value) for name, value in item.items())


# --- totals across processes ---------------------------------------------------------------


def merge(snapshots: Iterable[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    total: dict[str, dict[str, float]] = {}
    for snap in snapshots:
        for op, row in snap.items():
            mine = total.setdefault(op, dict.fromkeys(FIELDS, 0.0))
            for name, value in row.items():
                mine[name] = mine.get(name, 0.0) + float(value)
    return total


def subtract(after: Mapping[str, Mapping[str, float]],
             before: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for op, row in after.items():
        base = before.get(op, {})
        diff = {name: float(value) - float(base.get(name, 0.0)) for name, value in row.items()}
        if any(diff.values()):
            out[op] = diff
    return out


def read_dir(folder: str | Path) -> dict[str, dict[str, float]]:
    """The merged totals of every worker process that wrote into `folder`."""
    snaps = []
    for path in sorted(Path(folder).glob("meter-*.json")):
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            snaps.append(orjson.loads(path.read_bytes())["ops"])
    return merge(snaps)


class _Dumper(threading.Thread):
    def __init__(self, meter: AwsMeter, folder: Path) -> None:
        super().__init__(name="lt-meter", daemon=True)
        self.meter, self.folder = meter, folder

    def run(self) -> None:
        path = self.folder / f"meter-{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        last = None
        while True:
            snap = self.meter.snapshot()
            if snap != last:
                with contextlib.suppress(OSError):
                    tmp.write_bytes(orjson.dumps({"pid": os.getpid(), "t": time.time(), "ops": snap}))
                    os.replace(tmp, path)
                last = snap
            time.sleep(DUMP_INTERVAL_S)


_installed: AwsMeter | None = None


def install_in_worker(folder: str | None = None) -> AwsMeter | None:
    """Meter every client `aws.make_clients` makes in this process from now on (idempotent).

    Relies on the receiver calling `aws.make_clients` after loading the app, which it does
    (receiver.build_ports imports it at call time).
    """
    global _installed
    folder = folder or os.environ.get(METER_DIR_ENV)
    if not folder or _installed is not None:
        return _installed
    from .. import aws

    meter = _installed = AwsMeter()
    original = aws.make_clients
    dumper: list[_Dumper] = []
    lock = threading.Lock()

    def make_clients(*args: Any, **kwargs: Any) -> Any:
        clients = original(*args, **kwargs)
        meter.attach(clients.sqs)
        meter.attach(clients.dynamodb)
        with lock:  # the first client starts the dump thread: executors, which make none, have none
            if not dumper:
                Path(folder).mkdir(parents=True, exist_ok=True)
                dumper.append(_Dumper(meter, Path(folder)))
                dumper[0].start()
        return clients

    make_clients.__wrapped__ = original  # type: ignore[attr-defined]
    aws.make_clients = make_clients
    return meter
