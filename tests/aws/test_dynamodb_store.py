"""The DynamoDB stores against a real local DynamoDB-compatible server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flowcraft_sqs.errors import ContextTooLarge, RunStateError, ValueNotStorable
from flowcraft_sqs.protocol import Commit, RunMeta, RunState
from flowcraft_sqs.stores.dynamodb import (
    DynamoDbContext,
    DynamoDbCoordinationStore,
    DynamoRunStore,
    DynamoStatusTable,
    parse_last_updated,
)
from flowcraft_sqs.values import ITEM_SIZE_LIMIT_BYTES

pytestmark = pytest.mark.aws

META = RunMeta(blueprint_id="bp", blueprint_version="1", outstanding={"A": 1}, created_at=1.5)


@pytest.fixture
def ddb(aws_clients: Any) -> Any:
    return aws_clients.dynamodb


@pytest.fixture
def tables(infra: Any) -> dict[str, str]:
    """Fresh tables as the seed document creates them (keys runId, runId, key)."""
    return {
        "contexts": infra.context_table,
        "statuses": infra.status_table,
        "coordination": infra.coordination_table,
    }


@pytest.fixture
def store(ddb: Any, tables: dict[str, str]) -> DynamoRunStore:
    return DynamoRunStore(ddb, tables["contexts"])


@pytest.fixture
def statuses(ddb: Any, tables: dict[str, str]) -> DynamoStatusTable:
    return DynamoStatusTable(ddb, tables["statuses"])


def raw_item(ddb: Any, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    return ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")


def seed_like_client_ts(ddb: Any, table: str, run_id: str) -> None:
    """What the seed document's client.ts puts (DocumentClient marshalling)."""
    ddb.put_item(
        TableName=table,
        Item={
            "runId": {"S": run_id},
            "context": {
                "M": {
                    "userId": {"S": "user-7"},
                    "limits": {"M": {"max": {"N": "10"}, "ratio": {"N": "0.25"}}},
                    "tags": {"L": [{"S": "a"}, {"L": [{"N": "1"}, {"N": "2"}]}]},
                    "active": {"BOOL": True},
                    "nothing": {"NULL": True},
                }
            },
            "createdAt": {"S": "2025-06-01T12:00:00.000Z"},
        },
    )


SEEDED_CONTEXT = {
    "userId": "user-7",
    "limits": {"max": 10, "ratio": 0.25},
    "tags": ["a", [1, 2]],
    "active": True,
    "nothing": None,
}


def next_commit(state: RunState, sets: dict[str, Any], deletes: frozenset[str] = frozenset()) -> Commit:
    context = {k: v for k, v in state.context.items() if k not in deletes}
    context.update(sets)
    new_state = RunState(state.run_id, context, state.meta, state.version, state.attr_sizes)
    return Commit(new_state, sets, deletes, ())


# --- the run store -----------------------------------------------------------------------


class TestRunStore:
    def test_a_run_seeded_by_the_documented_client_reads_as_its_initial_context(self, ddb, tables, store):
        seed_like_client_ts(ddb, tables["contexts"], "seeded")
        state = store.load_runs(["seeded"])["seeded"]
        assert state.version == 0 and state.meta.blueprint_id == ""
        assert state.context == SEEDED_CONTEXT
        assert type(state.context["limits"]["max"]) is int

    def test_create_and_load_round_trip_exact_values(self, store):
        context = {
            "int": 1, "float": 1.0, "big": 2**62, "neg": -3.25, "none": None, "yes": True, "no": False,
            "text": "héllo ✓ 日本", "nested": {"list": [1, 1.0, {"deep": [None, "x"]}], "empty": {}},
            "_outputs.A": [],
        }
        store.create_run(RunState("r1", context, META))
        state = store.load_runs(["r1"])["r1"]
        assert state.version == 1 and state.meta == META and state.context == context
        assert type(state.context["int"]) is int and type(state.context["float"]) is float
        assert type(state.context["nested"]["list"][1]) is float

    def test_loading_many_runs_returns_every_id_and_none_for_missing_ones(self, store):
        for run_id in ("a", "b", "c"):
            store.create_run(RunState(run_id, {"id": run_id}, META))
        ids = ["a", "b", "c"] + [f"missing-{i}" for i in range(150)] + ["a"]
        loaded = store.load_runs(ids)
        assert set(loaded) == set(ids)
        assert [loaded[i].context["id"] for i in ("a", "b", "c")] == ["a", "b", "c"]
        assert all(loaded[f"missing-{i}"] is None for i in range(150))

    def test_creating_an_existing_run_is_refused(self, store):
        store.create_run(RunState("r1", {}, META))
        with pytest.raises(RunStateError, match="r1"):
            store.create_run(RunState("r1", {"x": 1}, META))

    def test_a_write_sets_and_removes_keys_and_bumps_the_version(self, store):
        store.create_run(RunState("r1", {"a": 1, "b": 2}, META))
        state = store.load_runs(["r1"])["r1"]
        assert store.write(next_commit(state, {"_outputs.A": {"x": 1.5}}, frozenset({"a"})), 1).ok
        state = store.load_runs(["r1"])["r1"]
        assert state.version == 2 and state.context == {"b": 2, "_outputs.A": {"x": 1.5}}

    def test_a_write_with_a_stale_version_conflicts_and_returns_the_current_state(self, store):
        store.create_run(RunState("r1", {"a": 1}, META))
        first = store.load_runs(["r1"])["r1"]
        assert store.write(next_commit(first, {"a": 2}), 1).ok
        result = store.write(next_commit(first, {"a": 3}), 1)
        assert not result.ok
        assert result.current is not None
        assert result.current.version == 2 and result.current.context == {"a": 2}
        assert store.load_runs(["r1"])["r1"].context == {"a": 2}

    def test_the_first_write_of_a_seeded_run_writes_every_key_and_removes_the_wrapper(self, ddb, tables, store):
        seed_like_client_ts(ddb, tables["contexts"], "seeded")
        seeded = store.load_runs(["seeded"])["seeded"]
        adopted = RunState("seeded", seeded.context, META, 0, seeded.attr_sizes)
        assert store.write(next_commit(adopted, {"_outputs.A": "done"}), 0).ok
        item = raw_item(ddb, tables["contexts"], {"runId": {"S": "seeded"}})
        assert "context" not in item and "createdAt" not in item
        assert set(item) == {"runId", "fc:v", "fc:meta", "_outputs.A", *SEEDED_CONTEXT}
        state = store.load_runs(["seeded"])["seeded"]
        assert state.version == 1 and state.meta == META
        assert state.context == {**SEEDED_CONTEXT, "_outputs.A": "done"}

    def test_a_second_first_write_of_a_seeded_run_conflicts(self, ddb, tables, store):
        seed_like_client_ts(ddb, tables["contexts"], "seeded")
        seeded = store.load_runs(["seeded"])["seeded"]
        adopted = RunState("seeded", seeded.context, META, 0, seeded.attr_sizes)
        assert store.write(next_commit(adopted, {"x": 1}), 0).ok
        result = store.write(next_commit(adopted, {"x": 2}), 0)
        assert not result.ok and result.current.version == 1 and result.current.context["x"] == 1

    def test_a_commit_past_400_kb_raises_context_too_large_and_changes_nothing(self, ddb, tables, store):
        store.create_run(RunState("r1", {"half": "x" * 250_000}, META))
        state = store.load_runs(["r1"])["r1"]
        before = raw_item(ddb, tables["contexts"], {"runId": {"S": "r1"}})
        with pytest.raises(ContextTooLarge, match=r"would be \d+ bytes") as caught:
            store.write(next_commit(state, {"more": "y" * 200_000}), 1)
        assert caught.value.size_bytes > ITEM_SIZE_LIMIT_BYTES
        assert caught.value.run_id == "r1"
        assert raw_item(ddb, tables["contexts"], {"runId": {"S": "r1"}}) == before

    def test_the_servers_own_size_refusal_is_context_too_large_too(self, ddb, tables):
        lenient = DynamoRunStore(ddb, tables["contexts"], item_limit_bytes=10 * ITEM_SIZE_LIMIT_BYTES)
        lenient.create_run(RunState("r1", {"half": "x" * 250_000}, META))
        state = lenient.load_runs(["r1"])["r1"]
        with pytest.raises(ContextTooLarge) as caught:
            lenient.write(next_commit(state, {"more": "y" * 200_000}), 1)
        assert caught.value.size_bytes > 450_000  # the whole item, measured

    @pytest.mark.parametrize(
        "bad", [float("nan"), float("inf"), b"raw", {1, 2}, object()], ids=["nan", "inf", "bytes", "set", "object"]
    )
    def test_an_unstorable_value_names_its_key_and_writes_nothing(self, ddb, tables, store, bad):
        store.create_run(RunState("r1", {"a": 1}, META))
        state = store.load_runs(["r1"])["r1"]
        before = raw_item(ddb, tables["contexts"], {"runId": {"S": "r1"}})
        with pytest.raises(ValueNotStorable, match="context key 'result'"):
            store.write(next_commit(state, {"ok": 1, "result": {"inner": [bad]}}), 1)
        assert raw_item(ddb, tables["contexts"], {"runId": {"S": "r1"}}) == before

    def test_a_commit_of_hundreds_of_keys_is_written_whole(self, store):
        store.create_run(RunState("r1", {"keep": True, "drop": 1}, META))
        state = store.load_runs(["r1"])["r1"]
        many = {f"_outputs.node-{i}": i for i in range(400)}
        assert store.write(next_commit(state, many, frozenset({"drop"})), 1).ok
        loaded = store.load_runs(["r1"])["r1"]
        assert loaded.version == 2 and loaded.context == {"keep": True, **many}


# --- the status table --------------------------------------------------------------------


class TestStatusTable:
    def test_start_then_touch_refresh_last_updated(self, statuses):
        statuses.start("r1", 1000.0)
        assert statuses.get("r1") == {"runId": "r1", "status": "running", "lastUpdated": 1000}
        statuses.touch("r1", 1060.5)
        assert statuses.get("r1")["lastUpdated"] == 1060.5

    def test_a_final_status_is_published_once(self, statuses):
        statuses.start("r1", 1000.0)
        context = {"moderation_result": {"ok": True, "score": 0.5}, "n": 3}
        assert statuses.publish("r1", "completed", None, context, 1100.0)
        first = statuses.get("r1")
        assert first["status"] == "completed" and first["lastUpdated"] == 1100
        assert first["result"] == {"context": context, "status": "completed"}
        assert not statuses.publish("r1", "failed", "late failure", None, 1200.0)
        statuses.touch("r1", 1300.0)
        assert statuses.get("r1") == first

    def test_a_failure_records_its_reason(self, statuses):
        statuses.start("r1", 1000.0)
        assert statuses.publish("r1", "failed", "Node 'A' failed: boom", None, 1001.0)
        item = statuses.get("r1")
        assert item["status"] == "failed" and item["reason"] == "Node 'A' failed: boom"
        assert "result" not in item

    def test_awaiting_is_not_final(self, statuses):
        statuses.start("r1", 1000.0)
        assert statuses.publish("r1", "awaiting", None, None, 1001.0)
        statuses.touch("r1", 1002.0)
        assert statuses.get("r1")["lastUpdated"] == 1002
        assert statuses.publish("r1", "completed", None, {}, 1003.0)

    def test_a_result_too_big_for_the_status_item_is_summarised(self, statuses):
        statuses.start("r1", 1000.0)
        assert statuses.publish("r1", "completed", None, {"blob": "x" * 420_000}, 1001.0)
        result = statuses.get("r1")["result"]
        assert result["status"] == "completed" and result["contextOmitted"] is True
        assert result["contextBytes"] > 420_000

    def test_the_seed_clients_iso_last_updated_parses(self, ddb, tables, statuses):
        ddb.put_item(
            TableName=tables["statuses"],
            Item={
                "runId": {"S": "seeded"},
                "status": {"S": "running"},
                "lastUpdated": {"S": "2025-06-01T12:00:00.000Z"},
            },
        )
        item = statuses.get("seeded")
        assert parse_last_updated(item["lastUpdated"]) == 1748779200.0
        statuses.touch("seeded", 1748779300.0)
        assert parse_last_updated(statuses.get("seeded")["lastUpdated"]) == 1748779300.0

    def test_a_missing_status_item_reads_as_none(self, statuses):
        assert statuses.get("nope") is None


# --- DynamoDbContext (TS §10.2 items 2 and 10) -------------------------------------------


class TestDynamoDbContext:
    def test_set_and_get_objects_numbers_and_arrays(self, ddb, tables):
        context = DynamoDbContext(ddb, tables["contexts"], "run-ctx")
        context.set("user", {"name": "Ada", "id": 1})
        context.set("count", 5)
        context.set("items", [1, "two", {"three": 3.0}])
        assert context.get("user") == {"name": "Ada", "id": 1}
        assert context.get("count") == 5
        assert context.get("items") == [1, "two", {"three": 3.0}]
        assert context.has("count") and not context.has("missing")
        assert context.get("missing") is None

    def test_patch_applies_sets_and_deletes_and_to_json_has_no_run_id(self, ddb, tables):
        context = DynamoDbContext(ddb, tables["contexts"], "run-ctx")
        context.set("items", [1, 2])
        context.patch([
            {"op": "set", "key": "user", "value": {"name": "Ada"}},
            {"op": "set", "key": "count", "value": 10},
            {"op": "delete", "key": "items"},
            {"op": "set", "key": "status", "value": "completed"},
        ])
        assert context.to_json() == {"user": {"name": "Ada"}, "count": 10, "status": "completed"}

    def test_patch_with_only_deletes_or_repeated_keys_is_valid(self, ddb, tables):
        context = DynamoDbContext(ddb, tables["contexts"], "run-ctx")
        context.patch([{"op": "set", "key": "a", "value": 1}, {"op": "set", "key": "a", "value": 2}])
        assert context.to_json() == {"a": 2}
        context.patch([{"op": "delete", "key": "a"}])
        assert context.to_json() == {}
        context.patch([])

    def test_delete_reports_whether_the_key_was_there(self, ddb, tables):
        context = DynamoDbContext(ddb, tables["contexts"], "run-ctx")
        context.set("a", 1)
        assert context.delete("a") is True
        assert context.delete("a") is False

    def test_it_reads_a_run_the_engine_wrote_and_one_the_seed_client_seeded(self, ddb, tables, store):
        store.create_run(RunState("ours", {"_outputs.A": 1.0}, META))
        assert DynamoDbContext(ddb, tables["contexts"], "ours").to_json() == {"_outputs.A": 1.0}
        seed_like_client_ts(ddb, tables["contexts"], "seeded")
        seeded = DynamoDbContext(ddb, tables["contexts"], "seeded")
        assert seeded.get("userId") == "user-7" and seeded.to_json() == SEEDED_CONTEXT


# --- DynamoDbCoordinationStore (TS §10.2 items 16-23) ------------------------------------


@pytest.fixture
def coordination(ddb: Any, tables: dict[str, str]) -> DynamoDbCoordinationStore:
    return DynamoDbCoordinationStore(ddb, tables["coordination"])


class TestCoordinationStore:
    def test_increment_counts_from_one(self, coordination):
        assert [coordination.increment("fanin", 60) for _ in range(5)] == [1, 2, 3, 4, 5]

    def test_set_if_not_exist_succeeds_once(self, coordination):
        assert coordination.set_if_not_exist("lock", "worker-1", 60) is True
        assert coordination.set_if_not_exist("lock", "worker-2", 60) is False
        assert coordination.get("lock") == "worker-1"

    def test_extend_ttl_needs_a_live_item(self, ddb, tables, coordination):
        assert coordination.extend_ttl("lock", 60) is False
        coordination.set_if_not_exist("lock", "w", 60)
        assert coordination.extend_ttl("lock", 600) is True
        item = raw_item(ddb, tables["coordination"], {"key": {"S": "lock"}})
        assert int(item["ttl"]["N"]) >= int(time.time()) + 590

    def test_delete_removes_the_item(self, coordination):
        coordination.set_if_not_exist("lock", "w", 60)
        coordination.delete("lock")
        assert coordination.get("lock") is None
        coordination.delete("never-there")

    def test_get_returns_the_string_or_none(self, coordination):
        assert coordination.get("missing") is None
        coordination.set_if_not_exist("k", "v", 60)
        assert coordination.get("k") == "v"
        coordination.increment("counter", 60)
        assert coordination.get("counter") == "1"

    def test_an_expired_item_counts_as_absent(self, ddb, tables, coordination):
        past = str(int(time.time()) - 10)
        for key, value in (("lock", {"S": "old"}), ("counter", {"N": "41"})):
            ddb.put_item(
                TableName=tables["coordination"],
                Item={"key": {"S": key}, "value": value, "ttl": {"N": past}},
            )
        assert coordination.get("lock") is None
        assert coordination.extend_ttl("lock", 60) is False
        assert coordination.set_if_not_exist("lock", "new", 60) is True
        assert coordination.get("lock") == "new"
        assert coordination.increment("counter", 60) == 1
        assert coordination.increment("counter", 60) == 2

    def test_the_ts_spellings_work(self, coordination):
        assert coordination.setIfNotExist("lock", "w", 60) is True
        assert coordination.extendTTL("lock", 60) is True

    def test_the_hash_key_attribute_is_configurable(self, ddb, make_infra):
        table = make_infra(coordination_key="coordinationKey").coordination_table
        store = DynamoDbCoordinationStore(ddb, table, key_attribute="coordinationKey")
        assert store.increment("fanin", 60) == 1
        assert store.set_if_not_exist("lock", "w", 60) is True
        assert store.get("lock") == "w"
        assert store.extend_ttl("lock", 60) is True
        store.delete("lock")
        assert store.get("lock") is None
        assert raw_item(ddb, table, {"coordinationKey": {"S": "fanin"}})["value"] == {"N": "1"}

    def test_the_default_ttl_comes_from_the_constructor(self, ddb, tables):
        store = DynamoDbCoordinationStore(ddb, tables["coordination"], ttl_seconds=120)
        store.set_if_not_exist("lock", "w")
        item = raw_item(ddb, tables["coordination"], {"key": {"S": "lock"}})
        assert abs(int(item["ttl"]["N"]) - (time.time() + 120)) < 5
