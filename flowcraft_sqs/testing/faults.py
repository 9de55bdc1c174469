"""`FaultProxy`: a loopback HTTP proxy that puts network and service faults between boto3
and a local AWS-compatible server.

    with FaultProxy(local_aws.sqs_endpoint) as proxy:      # binds 127.0.0.1:<free port>
        env = {"AWS_ENDPOINT_URL_SQS": proxy.url, ...}      # clients and workers use proxy.url
        proxy.duplicate_sends()                             # every SendMessage(Batch) twice
        proxy.throttle(0.2)                                 # 20% of requests: HTTP 400 throttling
        proxy.down(10)                                      # refuse connections for 10 s
        proxy.requests()["AmazonSQS.ReceiveMessage"]        # requests seen, by X-Amz-Target

It is a reverse proxy: clients send it exactly what they would send the server (endpoint
URL = `proxy.url`), and it forwards each request unchanged, reusing one upstream connection
per client connection, so SigV4 signatures and keep-alive behave as without it.

The faults, each on demand and until turned off:

- **duplicates** (`duplicate_sends`): an SQS `SendMessage`/`SendMessageBatch` request is
  forwarded twice, so the queue holds every message twice, with different message ids:
  exactly what SQS's at-least-once delivery allows. The client sees the first response.
- **throttling** (`throttle`): a fraction of requests is answered HTTP 400 without reaching
  the server, with the error each service sends when it throttles:
  DynamoDB `ProvisionedThroughputExceededException`, SQS `RequestThrottled` (the JSON
  protocol's `__type`, plus the `x-amzn-query-error` header SQS adds). botocore's retry
  handlers classify both codes as throttling (`botocore.retries.standard`), so clients back
  off and retry; the unit tests check that with a real botocore client.
- **outage** (`down`): existing connections are cut (in-flight requests get no response),
  and new ones are refused (`mode="refuse"`: the port is closed, as if the server had
  stopped; botocore raises EndpointConnectionError) or reset at once (`mode="reset"`:
  ConnectionClosedError). `up()` or the `seconds` argument ends it; the port stays the same.

The proxy keeps the server's state: stopping the real local server would lose every queue
and table, so an outage here is the way to "stop the servers for 10 s".

Counting: `requests()` counts requests received by target (`AmazonSQS.SendMessageBatch`,
`DynamoDB_20120810.UpdateItem`, ...), `faults()` counts the faults injected, and
`record=` keeps the full exchanges of chosen targets (`exchanges()`), e.g. to count the
status writes that DynamoDB accepted.

Threads only (one per client connection): the proxy runs inside a test process or a
benchmark script, on loopback, never on a public interface.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, Final
from urllib.parse import urlsplit

import orjson

LOOPBACK: Final = "127.0.0.1"
#: Requests wait at most this long (s) for the server: above SQS's 20 s long poll.
UPSTREAM_TIMEOUT_S: Final = 60.0
#: The accept loop notices an outage, an `up()` or a `stop()` within this long (s).
ACCEPT_POLL_S: Final = 0.05
#: Larger request heads are refused: no AWS SDK sends one.
MAX_HEADER_LINE: Final = 65536
#: Operations whose requests `duplicate_sends` forwards twice.
SQS_SENDS: Final = frozenset({"AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch"})
#: Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded; lengths are recomputed.
HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                               "proxy-authorization", "te", "trailer", "transfer-encoding",
                               "upgrade", "content-length"})
SERVICE_PREFIXES: Final = {"dynamodb": "DynamoDB_", "sqs": "AmazonSQS."}
THROTTLE_ERRORS: Final = {
    "dynamodb": ("com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                 "The level of configured provisioned throughput for the table was exceeded "
                 "(injected by FaultProxy)", None),
    "sqs": ("com.amazonaws.sqs#RequestThrottled", "Request is throttled (injected by FaultProxy)",
            "RequestThrottled;Sender"),
}
DOWN_MODES: Final = ("refuse", "reset")


@dataclass(frozen=True)
class Exchange:
    """One recorded request and the response its client got."""

    target: str
    request: bytes
    status: int
    response: bytes
    at: float  # time.time() when the response was sent

    def request_json(self) -> Any:
        return orjson.loads(self.request) if self.request else None


@dataclass
class _Request:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    close: bool

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


@dataclass
class _Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def to_bytes(self, close: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {self.reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in HOP_BY_HOP]
        lines += [f"Content-Length: {len(self.body)}", f"Connection: {'close' if close else 'keep-alive'}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


class _Dropped(Exception):
    """The client connection is to be cut without a response."""


class FaultProxy:
    """A reverse proxy on 127.0.0.1 to `upstream` (http://host:port) with injectable faults."""

    def __init__(self, upstream: str, *, seed: int | None = None,
                 record: Callable[[str], bool] | None = None, port: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self._record = record
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._exchanges: list[Exchange] = []
        self._duplicate = 0.0
        self._throttle: dict[str, float] = {}
        self._down: str | None = None  # None (up), "refuse" or "reset"
        self._timer: threading.Timer | None = None
        self._clients: set[socket.socket] = set()
        self._port = port
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._listener = self._listen(self._port)
        self._port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut every connection; idempotent."""
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None:
            self._thread.join(5.0)
        self._close_listener()
        self._cut_clients()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._port}"

    # --- faults ---------------------------------------------------------------------------

    def duplicate_sends(self, fraction: float = 1.0) -> None:
        """Forward this fraction of SQS SendMessage/SendMessageBatch requests twice (0: off)."""
        self._duplicate = _fraction(fraction)

    def throttle(self, fraction: float, services: Iterable[str] = ("dynamodb", "sqs")) -> None:
        """Answer this fraction of the services' requests with a throttling error (0: off)."""
        unknown = set(services) - set(SERVICE_PREFIXES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; choose from {sorted(SERVICE_PREFIXES)}")
        self._throttle = {service: _fraction(fraction) for service in services}

    def down(self, seconds: float | None = None, mode: str = "refuse") -> None:
        """Cut every connection and refuse (or reset) new ones, for `seconds` or until `up()`."""
        if mode not in DOWN_MODES:
            raise ValueError(f"mode must be one of {DOWN_MODES}, got {mode!r}")
        with self._lock:
            self._down = mode
            self._faults["outages"] += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if seconds is not None:
                self._timer = threading.Timer(seconds, self.up)
                self._timer.daemon = True
                self._timer.start()
        if mode == "refuse":
            self._close_listener()
        self._cut_clients()

    def up(self) -> None:
        """End an outage: accept connections again on the same port."""
        with self._lock:
            was, self._down = self._down, None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if was == "refuse" and not self._stopped.is_set():
            self._listener = self._listen(self._port)

    def clear(self) -> None:
        """Turn every fault off (counts are kept)."""
        self._duplicate = 0.0
        self._throttle = {}
        self.up()

    @property
    def is_down(self) -> bool:
        return self._down is not None

    # --- counts ---------------------------------------------------------------------------

    def requests(self) -> Counter[str]:
        """Requests received so far, by target (X-Amz-Target, e.g. `AmazonSQS.ReceiveMessage`)."""
        with self._lock:
            return Counter(self._requests)

    def faults(self) -> Counter[str]:
        """Faults injected so far: duplicated, throttled, cut (connections), outages."""
        with self._lock:
            return Counter(self._faults)

    def exchanges(self) -> list[Exchange]:
        """The exchanges of the targets chosen by `record=`, in the order they finished."""
        with self._lock:
            return list(self._exchanges)

    # --- serving --------------------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, port))
        listener.listen(128)
        listener.settimeout(ACCEPT_POLL_S)
        return listener

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown first: the accept thread's poll holds the socket open until it
            # returns, and only shutdown stops a listening socket at once (Linux).
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            listener = self._listener
            if listener is None:  # refusing: the port is closed until up()
                self._stopped.wait(ACCEPT_POLL_S)
                continue
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            if self._down is not None:
                _reset(conn)
                self._count_fault("cut")
                continue
            conn.settimeout(None)
            with self._lock:
                self._clients.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name="fault-proxy-conn", daemon=True).start()

    def _cut_clients(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients), set()
            self._faults["cut"] += len(clients)
        for conn in clients:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _serve(self, conn: socket.socket) -> None:
        upstream = _Upstream(*self.upstream)
        rfile = conn.makefile("rb")
        try:
            while not self._stopped.is_set():
                request = _read_request(rfile)
                if request is None:
                    return
                response = self._handle(request, upstream)
                conn.sendall(response.to_bytes(request.close))
                if request.close:
                    return
        except (_Dropped, OSError, ValueError, http.client.HTTPException):
            _reset(conn)
        finally:
            upstream.close()
            with self._lock:
                self._clients.discard(conn)
            with contextlib.suppress(OSError):
                rfile.close()
                conn.close()

    def _handle(self, request: _Request, upstream: _Upstream) -> _Response:
        target = _target(request)
        with self._lock:
            self._requests[target] += 1
        if self._down is not None:
            self._count_fault("cut")
            raise _Dropped()
        service = next((s for s, p in SERVICE_PREFIXES.items() if target.startswith(p)), None)
        if service is not None and self._chance(self._throttle.get(service, 0.0)):
            self._count_fault("throttled")
            response = _throttling(service)
        else:
            response = upstream.forward(request)
            if target in SQS_SENDS and self._chance(self._duplicate):
                self._count_fault("duplicated")
                upstream.forward(request)
        if self._record is not None and self._record(target):
            with self._lock:
                self._exchanges.append(Exchange(target, request.body, response.status, response.body, time.time()))
        return response

    def _chance(self, fraction: float) -> bool:
        if fraction <= 0.0:
            return False
        with self._lock:
            return self._random.random() < fraction

    def _count_fault(self, name: str) -> None:
        with self._lock:
            self._faults[name] += 1


class _Upstream:
    """One client connection's connection to the server, reused while it stays open."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.conn: http.client.HTTPConnection | None = None

    def forward(self, request: _Request) -> _Response:
        headers = {k: v for k, v in request.headers if k.lower() not in HOP_BY_HOP}
        reused = self.conn is not None
        try:
            return self._exchange(request, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
            # The server closed an idle kept-alive connection as we reused it: it never saw
            # the request (urllib3 retries the same case). Once, on a new connection.
            return self._exchange(request, headers)
        except OSError:
            self.close()
            raise

    def _exchange(self, request: _Request, headers: dict[str, str]) -> _Response:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=UPSTREAM_TIMEOUT_S)
        self.conn.request(request.method, request.path, body=request.body, headers=headers)
        reply = self.conn.getresponse()
        body = reply.read()
        if reply.will_close:
            self.close()
        return _Response(reply.status, reply.reason, reply.getheaders(), body)

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


def _read_request(rfile: BinaryIO) -> _Request | None:
    """One HTTP/1.1 request (Content-Length bodies, as AWS SDKs send); None at end of stream."""
    line = rfile.readline(MAX_HEADER_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_HEADER_LINE:
        raise ValueError("request line too long")
    method, path, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    message = http.client.parse_headers(rfile)
    headers = list(message.items())
    if message.get("Transfer-Encoding"):
        raise ValueError("chunked request bodies are not supported")
    length = int(message.get("Content-Length") or 0)
    body = rfile.read(length) if length else b""
    if len(body) != length:
        return None
    connection = (message.get("Connection") or "").lower()
    close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
    return _Request(method, path, headers, body, close)


def _target(request: _Request) -> str:
    """`X-Amz-Target` (JSON protocols), else the query protocol's Action, else method + path."""
    target = request.header("X-Amz-Target")
    if target:
        return target
    for pair in request.body.split(b"&"):
        if pair.startswith(b"Action="):
            return "Action." + pair[len(b"Action="):].decode("latin-1")
    return f"{request.method} {request.path}"


def _throttling(service: str) -> _Response:
    error_type, message, query_error = THROTTLE_ERRORS[service]
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", "fault-proxy")]
    if query_error:
        headers.append(("x-amzn-query-error", query_error))
    body = orjson.dumps({"__type": error_type, "message": message})
    return _Response(400, "Bad Request", headers, body)


def _reset(conn: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the peer sees a reset, not an orderly end."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        conn.close()


def _fraction(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a fraction is between 0 and 1, got {value!r}")
    return float(value)


__all__ = ["DOWN_MODES", "SQS_SENDS", "Exchange", "FaultProxy"]
