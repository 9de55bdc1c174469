"""DynamoDB storage: the run store, the status table, and the seed document's API.

Everything here speaks to DynamoDB through the boto3 *low-level* client (never the
resource API), always addresses attributes through `#placeholders` (context keys like
`_outputs.A` contain dots, and `status`, `value`, `key`, `ttl` are reserved words), and
turns AWS errors into our own (`errors.py`) at this edge.

Contexts table (contract §1), one item per run, hash key `runId` (S):

    runId      S   the run id
    fc:v       N   the item's version, for optimistic (conditional) writes
    fc:meta    B   orjson of `RunMeta.to_json()`: the protocol's bookkeeping
    <key>      B   one attribute per context key, named verbatim, `values.encode_value`

An item without `fc:v` was seeded by another client: the seed document's `client.ts`
writes `{runId, context: {...initial}, createdAt}`, and the TypeScript adapter writes one
native attribute per key. Both are read as version 0; the first write of ours rewrites
every context key in our layout and removes the seed client's wrapper attributes.

Attribute names starting with `fc:` are ours; a context key may not start with `fc:` or be
`runId` (the hash key) — such writes raise `ValueNotStorable` naming the key.

All calls here are synchronous: the worker calls them from its I/O threads. Throttling
and dropped connections are retried with exponential backoff and full jitter (on top of
botocore's own retries), then raised as `TransientError`.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from ..errors import ContextTooLarge, RunStateError, TransientError, ValueNotStorable
from ..ports import WriteResult
from ..protocol import AWAITING, COMPLETED, RUNNING, Commit, RunMeta, RunState
from ..values import (
    ITEM_SIZE_LIMIT_BYTES,
    attribute_size,
    decode_value,
    encode_value,
    from_attribute,
    to_attribute,
)

log = logging.getLogger("flowcraft_sqs.stores.dynamodb")

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]

# --- layout ------------------------------------------------------------------------------

HASH_KEY: Final = "runId"
VERSION_ATTR: Final = "fc:v"
META_ATTR: Final = "fc:meta"
RESERVED_PREFIX: Final = "fc:"  # our attributes; never a context key
SEED_WRAPPER_ATTRS: Final = frozenset({"context", "createdAt"})  # what the seed's client.ts writes
SEED_CONTEXT_ATTR: Final = "context"

# --- DynamoDB limits ---------------------------------------------------------------------

BATCH_GET_MAX_KEYS: Final = 100  # BatchGetItem accepts at most 100 keys per request
EXPRESSION_MAX_BYTES: Final = 4096  # DynamoDB's limit on any one expression string
STATUS_HEADROOM_BYTES: Final = 8 * 1024  # kept free in a status item for runId, status, reason, others' attributes

# --- retries -----------------------------------------------------------------------------

DEFAULT_MAX_ATTEMPTS: Final = 6  # per call; with the delays below about 3 s in the worst case
DEFAULT_BASE_DELAY_S: Final = 0.05  # first backoff; doubles on every attempt
DEFAULT_MAX_DELAY_S: Final = 2.0  # cap of one backoff, so a throttled worker keeps polling
BATCH_GET_MAX_IDLE_ROUNDS: Final = 8  # BatchGetItem rounds that return no item before giving up

RETRYABLE_ERROR_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
CONNECTION_ERRORS: Final = (
    EndpointConnectionError,
    ConnectionClosedError,
    ReadTimeoutError,
    ConnectTimeoutError,
)
CONDITION_FAILED: Final = "ConditionalCheckFailedException"
VALIDATION: Final = "ValidationException"
# PutItem says "Item size has exceeded...", UpdateItem "Item size to update has exceeded...";
# "Expression size has exceeded the maximum allowed size" is another error entirely.
ITEM_TOO_LARGE_TEXT: Final = "Item size"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter for throttling and connection errors."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_delay_s: float = DEFAULT_BASE_DELAY_S
    max_delay_s: float = DEFAULT_MAX_DELAY_S
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def delay_s(self, attempt: int) -> float:
        """Full jitter: spreads retries of many workers hitting the same partition."""
        return random.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_item_too_large(exc: ClientError) -> bool:
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return error_code(exc) == VALIDATION and ITEM_TOO_LARGE_TEXT in message and "exceeded" in message


class RetryingCaller:
    """Calls one client operation, retrying what is transient, raising TransientError after."""

    def __init__(self, client: Any, table_name: str, policy: RetryPolicy | None) -> None:
        self.client = client
        self.table_name = table_name
        self.policy = policy or RetryPolicy()

    def __call__(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self.client, operation)
        last: Exception | None = None
        for attempt in range(self.policy.max_attempts):
            if attempt:
                self.policy.sleep(self.policy.delay_s(attempt - 1))
            try:
                return method(**kwargs)
            except ClientError as exc:
                if error_code(exc) not in RETRYABLE_ERROR_CODES:
                    raise
                last = exc
            except CONNECTION_ERRORS as exc:
                last = exc
        raise TransientError(
            f"DynamoDB {operation} on table '{self.table_name}' failed after "
            f"{self.policy.max_attempts} attempts: {last}"
        ) from last


# --- item encoding and decoding (pure) ---------------------------------------------------


def check_context_key(key: str) -> None:
    """A context key must be a non-empty attribute name that is not ours or the hash key."""
    where = f"context key {key!r}"
    if not isinstance(key, str) or not key:
        raise ValueNotStorable(f"{where}: a context key must be a non-empty string")
    if key == HASH_KEY:
        raise ValueNotStorable(f"{where}: '{HASH_KEY}' is the contexts table's hash key")
    if key.startswith(RESERVED_PREFIX):
        raise ValueNotStorable(f"{where}: keys starting with '{RESERVED_PREFIX}' are reserved")


def encode_context_value(key: str, value: Any) -> AttributeValue:
    """A context value as the B attribute we store; ValueNotStorable names the key."""
    check_context_key(key)
    return {"B": encode_value(value, f"context key '{key}'")}


def encode_meta(meta: RunMeta) -> AttributeValue:
    return {"B": encode_value(meta.to_json(), "run bookkeeping (fc:meta)")}


def encode_version(version: int) -> AttributeValue:
    return {"N": str(version)}


def decode_attribute(attribute: Mapping[str, Any]) -> Any:
    """Our B values and any native value another client wrote."""
    if "B" in attribute:
        return decode_value(attribute["B"])
    return from_attribute(attribute)


def item_sizes(item: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    return {name: attribute_size(name, attribute) for name, attribute in item.items()}


def item_from_state(state: RunState, version: int) -> Item:
    """The whole item of `state` in our layout (PutItem)."""
    item: Item = {
        HASH_KEY: {"S": state.run_id},
        VERSION_ATTR: encode_version(version),
        META_ATTR: encode_meta(state.meta),
    }
    for key, value in state.context.items():
        item[key] = encode_context_value(key, value)
    return item


def state_from_item(item: Mapping[str, Mapping[str, Any]]) -> RunState:
    """A stored item as a RunState; an item without `fc:v` is a seeded run (version 0)."""
    run_id = item[HASH_KEY]["S"]
    sizes = item_sizes(item)
    if VERSION_ATTR not in item:
        meta = RunMeta(blueprint_id="", blueprint_version=None)
        return RunState(run_id, seeded_context(item), meta, 0, sizes)
    if META_ATTR not in item:
        raise RunStateError(f"run '{run_id}': item has '{VERSION_ATTR}' but no '{META_ATTR}'")
    meta = RunMeta.from_json(decode_value(item[META_ATTR]["B"]))
    context = {
        name: decode_attribute(attribute)
        for name, attribute in item.items()
        if name != HASH_KEY and not name.startswith(RESERVED_PREFIX)
    }
    return RunState(run_id, context, meta, int(item[VERSION_ATTR]["N"]), sizes)


def seeded_context(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The initial context of an item another client seeded.

    The seed's client.ts wraps it: `{runId, context: {...}, createdAt}` — nodes must see
    `userId`, not `context.userId`. Any other shape (TypeScript adapter style) has one
    attribute per context key.
    """
    names = set(item) - {HASH_KEY}
    wrapper = item.get(SEED_CONTEXT_ATTR)
    if names <= SEED_WRAPPER_ATTRS and wrapper is not None and "M" in wrapper:
        return {k: decode_attribute(v) for k, v in wrapper["M"].items()}
    return {name: decode_attribute(item[name]) for name in names}


# --- the conditional write (pure) --------------------------------------------------------


@dataclass(frozen=True)
class ItemChange:
    """The attributes one commit writes and removes; names in `sets` and `removes` are disjoint."""

    run_id: str
    expected_version: int
    sets: dict[str, AttributeValue]  # fc:v, fc:meta and the context keys written
    removes: tuple[str, ...]


def change_for_commit(commit: Commit, expected_version: int) -> ItemChange:
    """What `commit` writes. A first write (version 0) rewrites every context key.

    A key both set and deleted is set: `protocol` applies deletes before sets.
    """
    state = commit.state
    if expected_version == 0:
        # Every stored attribute that is not a key of the new context goes (the wrapper too).
        written = dict(state.context)
        removes = set(state.attr_sizes) | SEED_WRAPPER_ATTRS | set(commit.deletes)
    else:
        written = dict(commit.sets)
        removes = set(commit.deletes)
    removes = {n for n in removes if n != HASH_KEY and not n.startswith(RESERVED_PREFIX)}
    sets: dict[str, AttributeValue] = {
        VERSION_ATTR: encode_version(expected_version + 1),
        META_ATTR: encode_meta(state.meta),
    }
    for key, value in written.items():
        sets[key] = encode_context_value(key, value)
    return ItemChange(
        state.run_id, expected_version, sets, tuple(sorted(removes - set(written)))
    )


def sizes_after_change(state: RunState, change: ItemChange) -> dict[str, int]:
    """Each attribute's stored size after `change`, for the 400 KB check.

    Unchanged keys use the sizes the last load measured; a key without one (a state
    built in memory) is measured by encoding it.
    """
    sizes = {HASH_KEY: attribute_size(HASH_KEY, {"S": state.run_id})}
    for name in (VERSION_ATTR, META_ATTR):
        sizes[name] = attribute_size(name, change.sets[name])
    for key, value in state.context.items():
        if key in change.sets:
            sizes[key] = attribute_size(key, change.sets[key])
        elif key in state.attr_sizes:
            sizes[key] = state.attr_sizes[key]
        else:
            sizes[key] = attribute_size(key, {"B": encode_value(value, f"context key '{key}'")})
    return sizes


def condition_for(expected_version: int) -> tuple[str, dict[str, str], dict[str, AttributeValue]]:
    """The optimistic-lock condition: the stored version is still the one we read."""
    if expected_version == 0:
        # The seeded item must still exist and still be unwritten by us.
        names = {"#rid": HASH_KEY, "#fv": VERSION_ATTR}
        return "attribute_exists(#rid) AND attribute_not_exists(#fv)", names, {}
    return "#fv = :oldv", {"#fv": VERSION_ATTR}, {":oldv": encode_version(expected_version)}


def update_request(table_name: str, change: ItemChange) -> dict[str, Any]:
    """One UpdateItem: `SET #fv = :newv, #fm = :meta, #k0 = :v0, ... REMOVE #d0, ...`."""
    condition, names, values = condition_for(change.expected_version)
    names = {**names, "#fv": VERSION_ATTR, "#fm": META_ATTR}
    values = {**values, ":newv": change.sets[VERSION_ATTR], ":meta": change.sets[META_ATTR]}
    assignments = ["#fv = :newv", "#fm = :meta"]
    context_keys = [n for n in change.sets if n not in (VERSION_ATTR, META_ATTR)]
    for i, key in enumerate(context_keys):
        names[f"#k{i}"] = key
        values[f":v{i}"] = change.sets[key]
        assignments.append(f"#k{i} = :v{i}")
    expression = "SET " + ", ".join(assignments)
    if change.removes:
        for i, key in enumerate(change.removes):
            names[f"#d{i}"] = key
        expression += " REMOVE " + ", ".join(f"#d{i}" for i in range(len(change.removes)))
    return {
        "TableName": table_name,
        "Key": {HASH_KEY: {"S": change.run_id}},
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def put_request(table_name: str, state: RunState, change: ItemChange) -> dict[str, Any]:
    """The same write as one PutItem of the whole item, for a change too big to express."""
    item = item_from_state(state, change.expected_version + 1)
    condition, names, values = condition_for(change.expected_version)
    request: dict[str, Any] = {
        "TableName": table_name,
        "Item": item,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if values:
        request["ExpressionAttributeValues"] = values
    return request


# --- the run store -----------------------------------------------------------------------


class DynamoRunStore:
    """`RunStore` over the contexts table: consistent batch reads, one conditional write per commit."""

    def __init__(
        self,
        client: Any,
        table_name: str = "flowcraft-contexts",
        *,
        retry: RetryPolicy | None = None,
        item_limit_bytes: int = ITEM_SIZE_LIMIT_BYTES,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.item_limit_bytes = item_limit_bytes
        self._call = RetryingCaller(client, table_name, retry)

    # reads

    def load_runs(self, run_ids: Sequence[str]) -> dict[str, RunState | None]:
        """Strongly consistent reads, 100 keys per BatchGetItem; None for a run with no item."""
        unique = list(dict.fromkeys(run_ids))  # BatchGetItem refuses duplicate keys
        found: dict[str, RunState | None] = dict.fromkeys(unique)
        for start in range(0, len(unique), BATCH_GET_MAX_KEYS):
            for item in self._batch_get(unique[start : start + BATCH_GET_MAX_KEYS]):
                state = state_from_item(item)
                found[state.run_id] = state
        return found

    def _batch_get(self, run_ids: Sequence[str]) -> Iterable[Item]:
        pending: dict[str, Any] | None = {
            self.table_name: {
                "Keys": [{HASH_KEY: {"S": run_id}} for run_id in run_ids],
                "ConsistentRead": True,
            }
        }
        idle_rounds = 0
        while pending:
            response = self._call("batch_get_item", RequestItems=pending)
            items = response.get("Responses", {}).get(self.table_name, [])
            yield from items
            pending = response.get("UnprocessedKeys") or None
            # Unprocessed keys come from throttling or the 16 MB response cap; only rounds
            # that return nothing count towards giving up.
            idle_rounds = 0 if items else idle_rounds + 1
            if pending and idle_rounds >= BATCH_GET_MAX_IDLE_ROUNDS:
                raise TransientError(
                    f"DynamoDB BatchGetItem on '{self.table_name}' left keys unprocessed "
                    f"after {idle_rounds} rounds"
                )
            if pending and idle_rounds:
                self._call.policy.sleep(self._call.policy.delay_s(idle_rounds))

    # writes

    def sizes_after(self, commit: Commit, expected_version: int | None = None) -> dict[str, int]:
        """The size of each attribute of the item after `commit` would be written."""
        version = commit.state.version if expected_version is None else expected_version
        return sizes_after_change(commit.state, change_for_commit(commit, version))

    def write(self, commit: Commit, expected_version: int) -> WriteResult:
        """Apply `commit` only if the stored version is still `expected_version`."""
        change = change_for_commit(commit, expected_version)  # ValueNotStorable: nothing written
        sizes = sizes_after_change(commit.state, change)
        self._check_size(commit.state, sizes)
        request = update_request(self.table_name, change)
        if len(request["UpdateExpression"]) > EXPRESSION_MAX_BYTES:
            # Hundreds of keys at once (a large seeded context): write the whole item instead.
            request, operation = put_request(self.table_name, commit.state, change), "put_item"
        else:
            operation = "update_item"
        result = self._send(commit.state, operation, request)
        return WriteResult(True, sizes=sizes) if result.ok else result

    def _send(self, state: RunState, operation: str, request: dict[str, Any]) -> WriteResult:
        try:
            self._call(operation, **request)
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                item = exc.response.get("Item")
                return WriteResult(False, state_from_item(item) if item else None)
            if is_item_too_large(exc):
                raise self._too_large(state) from exc
            raise
        return WriteResult(True)

    def create_run(self, state: RunState) -> None:
        """Store a brand-new run at version 1; RunStateError if the run id exists."""
        item = item_from_state(state, 1)
        self._check_size(state, item_sizes(item))
        try:
            self._call(
                "put_item",
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(#rid)",
                ExpressionAttributeNames={"#rid": HASH_KEY},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                if exc.response.get("Item") == item:
                    return  # our own write, whose response was lost and the call retried
                raise RunStateError(f"run '{state.run_id}' already exists") from exc
            if is_item_too_large(exc):
                raise self._too_large(state) from exc
            raise

    def _check_size(self, state: RunState, sizes: Mapping[str, int]) -> None:
        size = sum(sizes.values())
        if size > self.item_limit_bytes:
            raise ContextTooLarge(state.run_id, size, self.item_limit_bytes)

    def _too_large(self, state: RunState) -> ContextTooLarge:
        """The server refused the size our estimate allowed: measure the whole item."""
        size = sum(item_sizes(item_from_state(state, state.version + 1)).values())
        return ContextTooLarge(state.run_id, size, min(self.item_limit_bytes, ITEM_SIZE_LIMIT_BYTES))


# --- the status table --------------------------------------------------------------------

STATUS_ATTR: Final = "status"
LAST_UPDATED_ATTR: Final = "lastUpdated"
RESULT_ATTR: Final = "result"
REASON_ATTR: Final = "reason"
AWAITING_ATTR: Final = "awaiting"  # what a waiting run waits for: node id -> details


def epoch_number(now: float) -> AttributeValue:
    """Epoch seconds as N, millisecond precision (the reconciler compares seconds)."""
    return {"N": f"{now:.3f}"}


def parse_last_updated(value: Any) -> float | None:
    """`lastUpdated` as epoch seconds, whether stored as N (ours, TS's) or ISO string (seed client).

    Accepts native values (int, float, Decimal, str) and raw AttributeValues (`{"N": ...}`,
    `{"S": ...}`); None for anything else. A naive ISO time is taken as UTC.
    """
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, inner),) = value.items()
        return parse_last_updated(inner) if kind in ("N", "S") else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, Decimal)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        return _parse_time_text(value.strip())
    return None


def _parse_time_text(text: str) -> float | None:
    try:
        number = float(Decimal(text))
        return number if math.isfinite(number) else None
    except InvalidOperation:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def result_attribute(status: str, context: Mapping[str, Any] | None, room_bytes: int) -> AttributeValue:
    """`result` = `{context, status}` natively, or `{status, contextOmitted, contextBytes}` if too big."""
    if context is not None:
        attribute = {"M": {"context": to_attribute(dict(context), "result.context"), "status": {"S": status}}}
        size = attribute_size(RESULT_ATTR, attribute)
        if size <= room_bytes:
            return attribute
    else:
        size = 0
    return omitted_result(status, size)


def omitted_result(status: str, context_bytes: int) -> AttributeValue:
    return {
        "M": {
            "status": {"S": status},
            "contextOmitted": {"BOOL": True},
            "contextBytes": {"N": str(context_bytes)},
        }
    }


class DynamoStatusTable:
    """`StatusTable` with the contract's top-level attributes: status, lastUpdated, result, reason.

    FIX vs TS (which nests everything under `finalStatus`): the seed's client polls the
    top-level `status` and reads `result.context.<key>`. A final status is written once.
    """

    def __init__(
        self,
        client: Any,
        table_name: str = "flowcraft-statuses",
        *,
        retry: RetryPolicy | None = None,
        item_limit_bytes: int = ITEM_SIZE_LIMIT_BYTES,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.item_limit_bytes = item_limit_bytes
        self._call = RetryingCaller(client, table_name, retry)

    def _key(self, run_id: str) -> Item:
        return {HASH_KEY: {"S": run_id}}

    def start(self, run_id: str, now: float) -> None:
        item = {**self._key(run_id), STATUS_ATTR: {"S": RUNNING}, LAST_UPDATED_ATTR: epoch_number(now)}
        self._call("put_item", TableName=self.table_name, Item=item)

    def touch(self, run_id: str, now: float) -> None:
        """Refresh `lastUpdated` of an active run; a run without a status item becomes `running`.

        A finished run is left alone (its condition fails, which is not an error).
        """
        try:
            self._call(
                "update_item",
                TableName=self.table_name,
                Key=self._key(run_id),
                UpdateExpression="SET #lu = :now, #st = if_not_exists(#st, :running)",
                ConditionExpression="attribute_not_exists(#st) OR #st IN (:running, :awaiting)",
                ExpressionAttributeNames={"#lu": LAST_UPDATED_ATTR, "#st": STATUS_ATTR},
                ExpressionAttributeValues={
                    ":now": epoch_number(now),
                    ":running": {"S": RUNNING},
                    ":awaiting": {"S": AWAITING},
                },
            )
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise

    def publish(
        self,
        run_id: str,
        status: str,
        reason: str | None,
        context: Mapping[str, Any] | None,
        now: float,
        awaiting: Mapping[str, Any] | None = None,
    ) -> bool:
        """Write `status` (final, or `awaiting`) unless a final status is there; True if written.

        A completed run's `result` holds its context in native DynamoDB types, so any client
        reads it. If that would pass the 400 KB item limit (or holds numbers DynamoDB's N
        cannot), `result` says `contextOmitted: true` with the context's size instead, and a
        warning is logged: the full context stays in the contexts table.
        """
        result = None
        if status == COMPLETED:
            reason_bytes = len(reason.encode()) if reason else 0
            room = self.item_limit_bytes - STATUS_HEADROOM_BYTES - reason_bytes
            result = result_attribute(status, context, room)
            self._warn_if_omitted(run_id, result)
        if awaiting is not None:
            result = {"M": {"awaiting": to_attribute(dict(awaiting), "awaiting")}}
        try:
            return self._publish(run_id, status, reason, result, now)
        except ClientError as exc:
            if result is None or error_code(exc) != VALIDATION or "contextOmitted" in result["M"]:
                raise
            # E.g. a float beyond N's range (1e126): storable as our B, not natively.
            log.warning("run %s: status result refused by DynamoDB (%s); context omitted", run_id, exc)
            omitted = omitted_result(status, attribute_size(RESULT_ATTR, result))
            return self._publish(run_id, status, reason, omitted, now)

    def _warn_if_omitted(self, run_id: str, result: AttributeValue) -> None:
        if "contextOmitted" in result["M"]:
            size = result["M"]["contextBytes"]["N"]
            log.warning(
                "run %s: final context is %s bytes, too big for the status item; "
                "result.contextOmitted is set, read the contexts table instead", run_id, size,
            )

    def _publish(
        self, run_id: str, status: str, reason: str | None, result: AttributeValue | None, now: float
    ) -> bool:
        names = {"#st": STATUS_ATTR, "#lu": LAST_UPDATED_ATTR}
        values: dict[str, AttributeValue] = {
            ":status": {"S": status},
            ":now": epoch_number(now),
            ":running": {"S": RUNNING},
            ":awaiting": {"S": AWAITING},
        }
        assignments = ["#st = :status", "#lu = :now"]
        if reason is not None:
            names["#rs"], values[":reason"] = REASON_ATTR, {"S": reason}
            assignments.append("#rs = :reason")
        if result is not None and "awaiting" in result["M"]:
            names["#aw"], values[":aw"] = AWAITING_ATTR, result["M"]["awaiting"]
            assignments.append("#aw = :aw")
        elif result is not None:
            names["#res"], values[":result"] = RESULT_ATTR, result
            assignments.append("#res = :result")
        if status != AWAITING:
            names["#aw"] = AWAITING_ATTR
            remove = " REMOVE #aw"
        else:
            remove = ""
        try:
            self._call(
                "update_item",
                TableName=self.table_name,
                Key=self._key(run_id),
                UpdateExpression="SET " + ", ".join(assignments) + remove,
                ConditionExpression="attribute_not_exists(#st) OR #st IN (:running, :awaiting)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise
        return True

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The status item, natively decoded (strongly consistent); None if absent."""
        response = self._call(
            "get_item", TableName=self.table_name, Key=self._key(run_id), ConsistentRead=True
        )
        item = response.get("Item")
        return {k: decode_attribute(v) for k, v in item.items()} if item else None


# --- the seed document's API: DynamoDbContext --------------------------------------------


def patch_request(
    table_name: str, run_id: str, ops: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """One UpdateItem for a list of `{op: 'set'|'delete', key, value}`; None if nothing to do.

    A key appears once (the last op on it wins), so paths never overlap, and a
    deletes-only patch sends no ExpressionAttributeValues (both fail in TS, §9.15).
    """
    final: dict[str, Mapping[str, Any]] = {}
    for op in ops:
        if op.get("op") not in ("set", "delete"):
            raise ValueError(f"patch op must be 'set' or 'delete', got {op.get('op')!r}")
        check_context_key(op["key"])
        final.pop(op["key"], None)  # re-insert so the order is that of the last op
        final[op["key"]] = op
    if not final:
        return None
    names: dict[str, str] = {}
    values: dict[str, AttributeValue] = {}
    assignments: list[str] = []
    removals: list[str] = []
    for i, (key, op) in enumerate(final.items()):
        names[f"#k{i}"] = key
        if op["op"] == "set":
            values[f":v{i}"] = encode_context_value(key, op.get("value"))
            assignments.append(f"#k{i} = :v{i}")
        else:
            removals.append(f"#k{i}")
    clauses = []
    if assignments:
        clauses.append("SET " + ", ".join(assignments))
    if removals:
        clauses.append("REMOVE " + ", ".join(removals))
    request: dict[str, Any] = {
        "TableName": table_name,
        "Key": {HASH_KEY: {"S": run_id}},
        "UpdateExpression": " ".join(clauses),
        "ExpressionAttributeNames": names,
    }
    if values:
        request["ExpressionAttributeValues"] = values
    return request


class DynamoDbContext:
    """One run's context in the contexts table, as the seed document's `DynamoDbContext`.

    Synchronous (our AWS edge is sync). Reads are strongly consistent and read the whole
    item, so they see exactly what nodes see, including a run the seed's client seeded
    (`userId`, not `context.userId`); a read of a 400 KB item costs 100 RCU. Writes are
    single-attribute upserts, as TS: they do not take part in the engine's version check,
    so use them for clients and inspection, not to race a run's nodes on the same keys.
    A write to a run still in the seed client's form (`{runId, context, createdAt}`, before
    any worker touched it) adds a top-level attribute, after which the item reads one key
    per attribute (`context` becomes a key): seed such runs whole, as client.ts does.
    Values are stored as orjson binary (exact round trip); native values are read too.
    """

    def __init__(
        self, client: Any, table_name: str, run_id: str, *, retry: RetryPolicy | None = None
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.run_id = run_id
        self._call = RetryingCaller(client, table_name, retry)

    def _key(self) -> Item:
        return {HASH_KEY: {"S": self.run_id}}

    def to_json(self) -> dict[str, Any]:
        """The context: no `runId`, none of our `fc:` attributes."""
        response = self._call(
            "get_item", TableName=self.table_name, Key=self._key(), ConsistentRead=True
        )
        item = response.get("Item")
        return dict(state_from_item(item).context) if item else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)

    def has(self, key: str) -> bool:
        return key in self.to_json()

    def set(self, key: str, value: Any) -> None:
        self.patch([{"op": "set", "key": key, "value": value}])

    def delete(self, key: str) -> bool:
        """Remove `key`; True if it was there."""
        check_context_key(key)
        response = self._call(
            "update_item",
            TableName=self.table_name,
            Key=self._key(),
            UpdateExpression="REMOVE #k",
            ExpressionAttributeNames={"#k": key},
            ReturnValues="UPDATED_OLD",
        )
        return bool(response.get("Attributes"))

    def patch(self, ops: Sequence[Mapping[str, Any]]) -> None:
        """Apply sets and deletes in one UpdateItem (none for an empty list)."""
        request = patch_request(self.table_name, self.run_id, ops)
        if request is not None:
            self._call("update_item", **request)

    toJSON = to_json  # the seed document's spelling, for ported code


# --- the seed document's API: DynamoDbCoordinationStore ----------------------------------

COORDINATION_VALUE_ATTR: Final = "value"
COORDINATION_TTL_ATTR: Final = "ttl"  # the table's TTL attribute, in epoch seconds
DEFAULT_COORDINATION_TTL_S: Final = 3600  # TS's default ttlSeconds
PLACEHOLDER: Final = re.compile(r"#\w+")
INCREMENT_MAX_ROUNDS: Final = 4  # an expired counter is reset with a second conditional write; races retry


class DynamoDbCoordinationStore:
    """Counters and locks in the coordination table, as the seed document's store.

    Item: `{<key_attribute>: S, value: N|S, ttl: N epoch seconds}`. The hash key attribute
    is `key` as the seed's CLI and Terraform create the table; pass
    `key_attribute="coordinationKey"` for a table made per the TS package README.

    FIX vs TS: an item whose `ttl` has passed counts as absent, because DynamoDB's TTL
    deletion lags expiry by up to days. Reads are strongly consistent.
    """

    def __init__(
        self,
        client: Any,
        table_name: str = "flowcraft-coordination",
        key_attribute: str = "key",
        ttl_seconds: int = DEFAULT_COORDINATION_TTL_S,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.key_attribute = key_attribute
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._call = RetryingCaller(client, table_name, retry)

    def _key(self, key: str) -> Item:
        return {self.key_attribute: {"S": key}}

    def _names(self) -> dict[str, str]:
        return {"#k": self.key_attribute, "#val": COORDINATION_VALUE_ATTR, "#ttl": COORDINATION_TTL_ATTR}

    def _times(self, ttl_s: int | None) -> dict[str, AttributeValue]:
        now = int(self.clock())
        expires = now + (self.ttl_seconds if ttl_s is None else int(ttl_s))
        return {":now": {"N": str(now)}, ":ttl": {"N": str(expires)}}

    def _conditional_update(self, key: str, expression: str, condition: str,
                            values: dict[str, AttributeValue]) -> dict[str, Any] | None:
        """UpdateItem; None if its condition failed."""
        used = set(PLACEHOLDER.findall(expression + " " + condition))
        names = {n: v for n, v in self._names().items() if n in used}  # unused names are refused
        try:
            return self._call(
                "update_item",
                TableName=self.table_name,
                Key=self._key(key),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return None
            raise

    def increment(self, key: str, ttl_s: int | None = None) -> int:
        """Add 1 to the counter (an absent or expired one starts at 0); the new value."""
        for _ in range(INCREMENT_MAX_ROUNDS):
            times = self._times(ttl_s)
            live = self._conditional_update(
                key,
                "SET #val = if_not_exists(#val, :zero) + :one, #ttl = :ttl",
                "attribute_not_exists(#ttl) OR #ttl >= :now",
                {**times, ":zero": {"N": "0"}, ":one": {"N": "1"}},
            )
            if live is None:  # expired but not yet deleted: restart the counter
                live = self._conditional_update(
                    key, "SET #val = :one, #ttl = :ttl", "#ttl < :now", {**times, ":one": {"N": "1"}}
                )
            if live is not None:
                return int(live["Attributes"][COORDINATION_VALUE_ATTR]["N"])
        raise TransientError(f"coordination key '{key}': counter kept changing between expiry checks")

    def set_if_not_exist(self, key: str, value: str, ttl_s: int | None = None) -> bool:
        """Store `value` unless a live item exists; True if stored."""
        written = self._conditional_update(
            key,
            "SET #val = :val, #ttl = :ttl",
            "attribute_not_exists(#k) OR #ttl < :now",
            {**self._times(ttl_s), ":val": {"S": str(value)}},
        )
        return written is not None

    def extend_ttl(self, key: str, ttl_s: int | None = None) -> bool:
        """Push a live item's expiry to now + ttl; False if it is absent or expired."""
        times = self._times(ttl_s)
        written = self._conditional_update(
            key, "SET #ttl = :ttl", "attribute_exists(#k) AND #ttl >= :now", times
        )
        return written is not None

    def delete(self, key: str) -> None:
        self._call("delete_item", TableName=self.table_name, Key=self._key(key))

    def get(self, key: str) -> str | None:
        """The stored value as a string (a counter's number as text); None if absent or expired."""
        response = self._call(
            "get_item", TableName=self.table_name, Key=self._key(key), ConsistentRead=True
        )
        item = response.get("Item")
        if not item or self._expired(item):
            return None
        value = item.get(COORDINATION_VALUE_ATTR, {})
        return value.get("S", value.get("N"))

    def _expired(self, item: Mapping[str, Mapping[str, Any]]) -> bool:
        ttl = item.get(COORDINATION_TTL_ATTR, {}).get("N")
        return ttl is not None and float(ttl) < int(self.clock())

    # The seed document's (TypeScript) spellings, for ported code.
    setIfNotExist = set_if_not_exist
    extendTTL = extend_ttl
