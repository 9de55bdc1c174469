"""In-memory `RunStore` and `StatusTable`: the same contract as DynamoDB, for fast tests."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ContextTooLarge, RunStateError
from ..ports import WriteResult
from ..protocol import ACTIVE_STATUSES, Commit, RunMeta, RunState
from ..values import ITEM_SIZE_LIMIT_BYTES, encode_value


class MemoryRunStore:
    """Runs keyed by id, with the version check and size limit of the DynamoDB store."""

    def __init__(self, item_limit_bytes: int = ITEM_SIZE_LIMIT_BYTES) -> None:
        self._runs: dict[str, RunState] = {}
        self._sizes: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self.item_limit_bytes = item_limit_bytes
        self.writes = 0
        self.reads = 0

    def seed(self, run_id: str, context: Mapping[str, Any]) -> None:
        """A run as another client seeds it: context only, no bookkeeping (version 0)."""
        with self._lock:
            self._runs[run_id] = RunState(run_id, dict(context), RunMeta("", None), 0)

    def load_runs(self, run_ids: Sequence[str]) -> dict[str, RunState | None]:
        with self._lock:
            self.reads += 1
            return {run_id: self._runs.get(run_id) for run_id in run_ids}

    def create_run(self, state: RunState) -> None:
        with self._lock:
            if state.run_id in self._runs:
                raise RunStateError(f"run '{state.run_id}' already exists")
            self._check_size(state)
            self._runs[state.run_id] = RunState(state.run_id, dict(state.context), state.meta, 1)

    def write(self, commit: Commit, expected_version: int) -> WriteResult:
        written = {key: len(key) + len(encode_value(value, f"context key '{key}'"))
                   for key, value in commit.sets.items()}
        with self._lock:
            self.writes += 1
            new = commit.state
            current = self._runs.get(new.run_id)
            if current is None or current.version != expected_version:
                return WriteResult(False, current)
            sizes = dict(self._sizes.get(new.run_id, {}))
            for key in commit.deletes:
                sizes.pop(key, None)
            sizes.update(written)
            self._check_total(new.run_id, sum(sizes.values()))
            self._sizes[new.run_id] = sizes
            self._runs[new.run_id] = RunState(new.run_id, new.context, new.meta, expected_version + 1)
            return WriteResult(True)

    def _check_size(self, state: RunState) -> None:
        sizes = {k: len(k) + len(encode_value(v, f"context key '{k}'")) for k, v in state.context.items()}
        self._check_total(state.run_id, sum(sizes.values()))
        self._sizes[state.run_id] = sizes

    def _check_total(self, run_id: str, size: int) -> None:
        """Sizes are kept per key, so a write encodes only what it changes."""
        if size > self.item_limit_bytes:
            raise ContextTooLarge(run_id, size, self.item_limit_bytes)

    def get(self, run_id: str) -> RunState | None:
        with self._lock:
            return self._runs.get(run_id)


class MemoryStatusTable:
    """Status items as the seed's client reads them: status, lastUpdated, result, reason."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.publish_writes = 0

    def start(self, run_id: str, now: float) -> None:
        with self._lock:
            self.items[run_id] = {"runId": run_id, "status": "running", "lastUpdated": now}

    def touch(self, run_id: str, now: float) -> None:
        with self._lock:
            item = self.items.setdefault(run_id, {"runId": run_id, "status": "running"})
            if item.get("status") in ACTIVE_STATUSES:
                item["lastUpdated"] = now

    def publish(
        self,
        run_id: str,
        status: str,
        reason: str | None,
        context: Mapping[str, Any] | None,
        now: float,
        awaiting: Mapping[str, Any] | None = None,
    ) -> bool:
        with self._lock:
            item = self.items.setdefault(run_id, {"runId": run_id, "status": "running"})
            if item.get("status") not in ACTIVE_STATUSES:
                return False
            if status not in ACTIVE_STATUSES:
                self.publish_writes += 1
            item.update(status=status, lastUpdated=now)
            item.pop("awaiting", None)
            if awaiting is not None:
                item["awaiting"] = copy.deepcopy(dict(awaiting))
            if reason is not None:
                item["reason"] = reason
            if status == "completed":
                item["result"] = {"context": copy.deepcopy(dict(context or {})), "status": status}
            return True
