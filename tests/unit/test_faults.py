"""FaultProxy against a tiny upstream http.server on loopback: forwarding, duplicates,
throttling that botocore really retries, and outages that botocore really sees."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from flowcraft_sqs.testing.faults import FaultProxy

pytestmark = pytest.mark.timeout(30)


class Upstream:
    """An HTTP/1.1 server that answers every POST `{"seen": <n>}` and records what it got."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with upstream.lock:
                    upstream.seen.append((self.headers.get("X-Amz-Target", ""), body))
                    reply = orjson.dumps({"seen": len(upstream.seen)})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def targets(self) -> Counter[str]:
        with self.lock:
            return Counter(target for target, _ in self.seen)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[FaultProxy]:
    with FaultProxy(upstream.url, seed=7, record=lambda target: target.endswith("Batch")) as p:
        yield p


def post(url: str, target: str, body: bytes = b"{}") -> tuple[int, bytes]:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        conn.request("POST", "/", body=body, headers={"X-Amz-Target": target,
                                                       "Content-Type": "application/x-amz-json-1.0"})
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def botocore_client(service: str, url: str, attempts: int = 3) -> Any:
    import botocore.session
    from botocore.config import Config

    session = botocore.session.get_session()
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts},
                    connect_timeout=1, read_timeout=5)
    return session.create_client(service, region_name="us-east-1", endpoint_url=url, config=config,
                                 aws_access_key_id="k", aws_secret_access_key="s")


def test_requests_are_forwarded_unchanged_and_counted_by_target(upstream: Upstream, proxy: FaultProxy) -> None:
    # Given a proxy with no faults
    # When a client sends two requests through it
    assert post(proxy.url, "DynamoDB_20120810.GetItem", b'{"k": 1}') == (200, b'{"seen":1}')
    assert post(proxy.url, "AmazonSQS.ReceiveMessage")[0] == 200
    # Then the server got them as sent, and the proxy counted them by target
    assert upstream.seen == [("DynamoDB_20120810.GetItem", b'{"k": 1}'), ("AmazonSQS.ReceiveMessage", b"{}")]
    assert proxy.requests() == Counter({"DynamoDB_20120810.GetItem": 1, "AmazonSQS.ReceiveMessage": 1})


def test_one_kept_alive_connection_carries_many_requests(upstream: Upstream, proxy: FaultProxy) -> None:
    # Given a botocore client, which keeps its connection alive
    sqs = botocore_client("sqs", proxy.url)
    # When it makes several calls
    for _ in range(5):
        sqs.delete_message(QueueUrl=proxy.url + "/q", ReceiptHandle="r")
    # Then every call reached the server once
    assert upstream.targets() == Counter({"AmazonSQS.DeleteMessage": 5})


def test_duplicate_sends_forwards_each_send_twice_and_nothing_else(upstream: Upstream, proxy: FaultProxy) -> None:
    # Given duplicated sends
    proxy.duplicate_sends()
    # When a client sends a batch, a single message, and receives
    status, body = post(proxy.url, "AmazonSQS.SendMessageBatch", b'{"Entries": [1]}')
    post(proxy.url, "AmazonSQS.SendMessage")
    post(proxy.url, "AmazonSQS.ReceiveMessage")
    # Then the server got both sends twice (same body) and the receive once
    assert upstream.targets() == Counter({"AmazonSQS.SendMessageBatch": 2, "AmazonSQS.SendMessage": 2,
                                          "AmazonSQS.ReceiveMessage": 1})
    assert [b for t, b in upstream.seen if t.endswith("Batch")] == [b'{"Entries": [1]}'] * 2
    # And the client saw the first response only; the proxy counted and recorded it once
    assert (status, body) == (200, b'{"seen":1}')
    assert proxy.faults()["duplicated"] == 2
    assert [(e.target, e.status) for e in proxy.exchanges()] == [("AmazonSQS.SendMessageBatch", 200)]


def test_dynamodb_throttling_is_retried_by_botocore_as_throttling(upstream: Upstream, proxy: FaultProxy) -> None:
    from botocore.exceptions import ClientError

    # Given every DynamoDB request throttled
    proxy.throttle(1.0, services=["dynamodb"])
    ddb = botocore_client("dynamodb", proxy.url, attempts=2)
    # When a client calls, Then botocore retried it (2 attempts) and gave up with the throttling code
    with pytest.raises(ClientError) as raised:
        ddb.get_item(TableName="t", Key={"k": {"S": "v"}})
    assert raised.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert proxy.requests()["DynamoDB_20120810.GetItem"] == 2 and proxy.faults()["throttled"] == 2
    # And nothing reached the server
    assert upstream.seen == []


def test_sqs_throttling_is_retried_by_botocore_as_throttling(upstream: Upstream, proxy: FaultProxy) -> None:
    from botocore.exceptions import ClientError

    # Given every SQS request throttled
    proxy.throttle(1.0, services=["sqs"])
    sqs = botocore_client("sqs", proxy.url, attempts=2)
    # When a client calls, Then botocore retried it and reports SQS's throttling code
    with pytest.raises(ClientError) as raised:
        sqs.send_message(QueueUrl=proxy.url + "/q", MessageBody="x")
    assert raised.value.response["Error"]["Code"] == "RequestThrottled"
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert upstream.seen == []


def test_partial_throttling_backs_off_then_succeeds(upstream: Upstream, proxy: FaultProxy) -> None:
    # Given a third of all requests throttled
    proxy.throttle(0.3)
    ddb = botocore_client("dynamodb", proxy.url, attempts=10)
    # When a client makes 8 calls, Then each succeeds after botocore's retries
    for _ in range(8):
        ddb.get_item(TableName="t", Key={"k": {"S": "v"}})
    assert len(upstream.seen) == 8
    assert proxy.faults()["throttled"] > 0
    assert proxy.requests()["DynamoDB_20120810.GetItem"] == 8 + proxy.faults()["throttled"]


def test_down_refuses_connections_until_up_on_the_same_port(upstream: Upstream, proxy: FaultProxy) -> None:
    from botocore.exceptions import EndpointConnectionError

    # Given a proxy that went down
    port = proxy.port
    proxy.down()
    # When a client connects, Then the connection is refused, as if the server had stopped
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with pytest.raises(EndpointConnectionError):
        botocore_client("dynamodb", proxy.url, attempts=1).list_tables()
    # And after up() the same URL works again
    proxy.up()
    assert proxy.port == port and post(proxy.url, "AmazonSQS.ListQueues")[0] == 200


def test_down_in_reset_mode_cuts_connections(upstream: Upstream, proxy: FaultProxy) -> None:
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    # Given a proxy whose connections are reset
    proxy.down(mode="reset")
    # When a client calls, Then it sees the connection closed on it
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        botocore_client("dynamodb", proxy.url, attempts=1).list_tables()
    assert upstream.seen == []
    assert proxy.faults()["cut"] >= 1


def test_an_outage_with_seconds_ends_by_itself(upstream: Upstream, proxy: FaultProxy) -> None:
    # Given a 0.3 s outage
    proxy.down(0.3)
    assert proxy.is_down
    # When it has passed, Then requests go through again
    deadline = time.monotonic() + 5
    while proxy.is_down and time.monotonic() < deadline:
        time.sleep(0.02)
    assert post(proxy.url, "AmazonSQS.ListQueues")[0] == 200


def test_an_outage_cuts_a_request_in_flight(upstream: Upstream) -> None:
    # Given an upstream that holds its response (a long poll)
    release = threading.Event()
    handler_class: Any = upstream.server.RequestHandlerClass
    original = handler_class.do_POST

    def slow(handler: Any) -> None:
        release.wait(5)
        original(handler)

    handler_class.do_POST = slow
    with FaultProxy(upstream.url) as proxy:
        outcome: list[Any] = []
        thread = threading.Thread(target=lambda: outcome.append(_try_post(proxy.url)))
        thread.start()
        deadline = time.monotonic() + 5
        while not proxy.requests() and time.monotonic() < deadline:
            time.sleep(0.01)
        # When the proxy goes down while the request waits
        proxy.down()
        release.set()
        thread.join(5)
    # Then the client gets no response: its connection was cut
    assert outcome and isinstance(outcome[0], OSError | ConnectionError)


def _try_post(url: str) -> Any:
    import http.client

    try:
        return post(url, "AmazonSQS.ReceiveMessage")
    except (OSError, http.client.HTTPException) as exc:
        return exc if isinstance(exc, OSError) else ConnectionError(str(exc))


def test_faults_are_checked_when_set() -> None:
    # Given an upstream URL that is not http://host:port, or a fraction out of range
    with pytest.raises(ValueError, match="http://host:port"):
        FaultProxy("https://example.com")
    proxy = FaultProxy("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="between 0 and 1"):
        proxy.throttle(1.5)
    with pytest.raises(ValueError, match="unknown services"):
        proxy.throttle(0.1, services=["s3"])
    with pytest.raises(ValueError, match="mode"):
        proxy.down(mode="sideways")
