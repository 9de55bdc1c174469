"""What a node sees while it runs: its `NodeContext` and the run's context as a `RunContextView`.

The view reads a snapshot of the run's flat context (taken when the job started) plus the
node's own writes. Writes are *recorded*, never applied to the snapshot: the executor
commits them together with the node's result, atomically, exactly once (contract §2).

The API mirrors TypeScript Flowcraft's async context (`await ctx.context.get(key)`), and
every method has a synchronous twin with a `_sync` suffix (`ctx.context.get_sync(key)`)
for plain `def` nodes. Both spellings share the same state.

Values are copied in and out (deep copies), so mutating a value you read, or a value after
you `set` it, changes nothing in the run: the same as a distributed run, where every read
is a fresh decode of the stored item.
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .jsvalues import UNDEFINED

RESERVED_KEY = "runId"
RESERVED_PREFIX = "fc:"


def check_writable_key(key: Any) -> str:
    """Return `key` if a node may write or delete it; otherwise raise a clear error.

    Keys are strings; `runId` and every key starting with `fc:` belong to the engine.
    """
    if not isinstance(key, str):
        raise TypeError(f"Context keys are strings, not {type(key).__name__} ({key!r})")
    if key == RESERVED_KEY or key.startswith(RESERVED_PREFIX):
        raise ValueError(
            f"Context key '{key}' is reserved: nodes may not write or delete "
            f"'{RESERVED_KEY}' or keys starting with '{RESERVED_PREFIX}'"
        )
    return key


def _copy(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:  # not copyable: the store rejects it at commit with a clear error
        return value


class RunContextView:
    """The run's context as one node execution sees it: snapshot + own writes.

    Async API (as TS): `get`, `set`, `has`, `delete`, `to_json` (alias `toJSON`), `patch`.
    Sync twins: `get_sync`, `set_sync`, `has_sync`, `delete_sync`, `to_json_sync`, `patch_sync`.
    What the node changed: `writes()` (key -> value, last write wins) and `deletes()`.
    """

    __slots__ = ("_snapshot", "_writes", "_deletes", "_closed")

    def __init__(self, snapshot: Mapping[str, Any] | None = None) -> None:
        self._snapshot: dict[str, Any] = dict(snapshot or {})
        self._writes: dict[str, Any] = {}
        self._deletes: builtins.set[str] = builtins.set()
        self._closed = False

    # -- reads -------------------------------------------------------------------------

    def get_sync(self, key: str, default: Any = None) -> Any:
        """The value of `key` (a copy), or `default` if the key is absent or deleted."""
        if key in self._deletes:
            return default
        if key in self._writes:
            return _copy(self._writes[key])
        if key in self._snapshot:
            return _copy(self._snapshot[key])
        return default

    def has_sync(self, key: str) -> bool:
        if key in self._deletes:
            return False
        return key in self._writes or key in self._snapshot

    def to_json_sync(self) -> dict[str, Any]:
        """The whole context as this node sees it: snapshot, own writes on top, deletes removed."""
        merged = {k: v for k, v in self._snapshot.items() if k not in self._deletes}
        merged.update(self._writes)
        return _copy(merged)

    # -- writes ------------------------------------------------------------------------

    def set_sync(self, key: str, value: Any) -> None:
        """Record `key = value`; a later delete of the same key replaces this write."""
        check_writable_key(key)
        self._check_open(key)
        self._writes[key] = _copy(value)
        self._deletes.discard(key)

    def delete_sync(self, key: str) -> bool:
        """Record the deletion of `key`; True if the key was visible to this node."""
        check_writable_key(key)
        self._check_open(key)
        existed = self.has_sync(key)
        self._writes.pop(key, None)
        self._deletes.add(key)
        return existed

    def patch_sync(self, ops: Iterable[Mapping[str, Any]]) -> None:
        """Apply `{"op": "set", "key", "value"}` / `{"op": "delete", "key"}` in order.

        Every op is checked first, so an invalid op records nothing.
        """
        checked: list[tuple[str, str, Any]] = []
        for index, op in enumerate(ops):
            if not isinstance(op, Mapping):
                raise ValueError(f"patch op {index} must be an object, not {type(op).__name__}")
            kind, key = op.get("op"), check_writable_key(op.get("key"))
            if kind == "set":
                if "value" not in op:
                    raise ValueError(f"patch op {index} (set '{key}') has no 'value'")
                checked.append(("set", key, op["value"]))
            elif kind == "delete":
                checked.append(("delete", key, None))
            else:
                raise ValueError(f"patch op {index} has op {kind!r}; expected 'set' or 'delete'")
        for kind, key, value in checked:
            if kind == "set":
                self.set_sync(key, value)
            else:
                self.delete_sync(key)

    # -- async API (TS shape) ----------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        return self.get_sync(key, default)

    async def set(self, key: str, value: Any) -> None:
        self.set_sync(key, value)

    async def has(self, key: str) -> bool:
        return self.has_sync(key)

    async def delete(self, key: str) -> bool:
        return self.delete_sync(key)

    async def to_json(self) -> dict[str, Any]:
        return self.to_json_sync()

    toJSON = to_json  # the TypeScript spelling, for ported nodes

    async def patch(self, ops: Iterable[Mapping[str, Any]]) -> None:
        self.patch_sync(ops)

    # -- for the executor --------------------------------------------------------------

    @property
    def snapshot(self) -> Mapping[str, Any]:
        """The read-only snapshot this view started from (without the node's writes)."""
        return MappingProxyType(self._snapshot)

    def writes(self) -> dict[str, Any]:
        """Keys the node set and did not delete afterwards, with their last values."""
        return dict(self._writes)

    def deletes(self) -> builtins.set[str]:
        """Keys the node deleted and did not set afterwards."""
        return set(self._deletes)

    def close(self) -> None:
        """Refuse further writes: the node's execution has ended and its writes are taken.

        A timed-out synchronous node keeps running in its thread; this makes its late
        writes fail loudly instead of vanishing.
        """
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self, key: str) -> None:
        if self._closed:
            raise RuntimeError(
                f"Context write of '{key}' after the node's execution ended "
                "(timed out or finished); it would be lost"
            )

    def __repr__(self) -> str:
        return (
            f"RunContextView(keys={len(self._snapshot)}, writes={sorted(self._writes)}, "
            f"deletes={sorted(self._deletes)})"
        )


_TS_NAMES = {"nodeId": "node_id", "runId": "run_id", "blueprintId": "blueprint_id"}


@dataclass
class NodeContext:
    """The single argument of a function node, and the `ctx` of class-node methods.

    Attributes as TS: `context` (the run's context API), `input`, `params`, `dependencies`,
    `signal` (a cancellation token or None); plus `node_id`, `run_id`, `blueprint_id` and
    `attempt` (1-based, set by the executor before each attempt). TS spellings work too:
    `ctx.nodeId`, and `ctx["input"]` for nodes ported from destructuring code.
    """

    context: RunContextView
    input: Any = UNDEFINED
    params: dict[str, Any] = field(default_factory=dict)
    dependencies: dict[str, Any] = field(default_factory=dict)
    signal: Any = None
    node_id: str = ""
    run_id: str = ""
    blueprint_id: str = ""
    attempt: int = 1

    @property
    def nodeId(self) -> str:  # TS spelling
        return self.node_id

    @property
    def runId(self) -> str:  # TS spelling
        return self.run_id

    @property
    def blueprintId(self) -> str:  # TS spelling
        return self.blueprint_id

    def __getitem__(self, name: str) -> Any:
        attr = _TS_NAMES.get(name, name)
        if attr.startswith("_") or attr not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, attr)
