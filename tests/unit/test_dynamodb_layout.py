"""The pure parts of the DynamoDB layer: item encoding, update expressions, size accounting."""

from __future__ import annotations

import re

import pytest

from flowcraft_sqs.errors import TransientError, ValueNotStorable
from flowcraft_sqs.protocol import Commit, RunMeta, RunState
from flowcraft_sqs.stores.dynamodb import (
    EXPRESSION_MAX_BYTES,
    HASH_KEY,
    META_ATTR,
    VERSION_ATTR,
    ItemChange,
    RetryingCaller,
    RetryPolicy,
    change_for_commit,
    is_item_too_large,
    item_from_state,
    item_sizes,
    parse_last_updated,
    patch_request,
    put_request,
    result_attribute,
    sizes_after_change,
    state_from_item,
    update_request,
)
from flowcraft_sqs.values import attribute_size, encode_value

META = RunMeta(blueprint_id="bp", blueprint_version="1", outstanding={"A": 1})


def stored(context: dict, version: int = 1, meta: RunMeta = META) -> RunState:
    """A state as loaded from the table: decoded from the item our layout writes."""
    return state_from_item(item_from_state(RunState("run-1", context, meta), version))


def commit(state: RunState, sets: dict, deletes: frozenset = frozenset(), context=None) -> Commit:
    new_context = dict(context if context is not None else state.context)
    for key in deletes:
        new_context.pop(key, None)
    new_context.update(sets)
    new_state = RunState(state.run_id, new_context, state.meta, state.version, state.attr_sizes)
    return Commit(new_state, sets, frozenset(deletes), ())


def placeholders(request: dict) -> set[str]:
    text = request.get("UpdateExpression", "") + " " + request.get("ConditionExpression", "")
    return set(re.findall(r"[#:]\w+", text))


def assert_well_formed(request: dict) -> None:
    """Every placeholder is defined and used; no empty maps; no attribute appears twice."""
    used = placeholders(request)
    names = request.get("ExpressionAttributeNames", {})
    values = request.get("ExpressionAttributeValues")
    assert set(names) == {p for p in used if p.startswith("#")}
    assert set(values or {}) == {p for p in used if p.startswith(":")}
    assert values is None or values, "ExpressionAttributeValues must not be empty"
    update = request.get("UpdateExpression", "")
    paths = [names[p] for p in re.findall(r"#\w+", update)]
    assert len(paths) == len(set(paths)), f"overlapping paths in {update}"


class TestItemLayout:
    def test_a_run_is_stored_with_its_version_meta_and_one_binary_attribute_per_key(self):
        item = item_from_state(RunState("run-1", {"_outputs.A": 1, "user": {"n": "x"}}, META), 3)
        assert item[HASH_KEY] == {"S": "run-1"}
        assert item[VERSION_ATTR] == {"N": "3"}
        assert set(item) == {HASH_KEY, VERSION_ATTR, META_ATTR, "_outputs.A", "user"}
        assert item["_outputs.A"] == {"B": b"1"}

    def test_values_round_trip_exactly(self):
        context = {"i": 1, "f": 1.0, "n": None, "b": False, "u": "héllo ✓", "d": {"l": [1, 2.5, {"x": []}]}}
        state = stored(context, version=7)
        assert state.context == context
        assert type(state.context["i"]) is int and type(state.context["f"]) is float
        assert state.version == 7 and state.meta == META

    def test_loaded_sizes_cover_every_attribute(self):
        item = item_from_state(RunState("run-1", {"k": "v" * 100}, META), 1)
        state = state_from_item(item)
        assert set(state.attr_sizes) == set(item)
        assert state.attr_sizes["k"] == len("k") + len(b'"' + b"v" * 100 + b'"')

    def test_the_seed_clients_wrapper_is_read_as_the_initial_context(self):
        item = {
            "runId": {"S": "r"},
            "context": {"M": {"userId": {"S": "u1"}, "n": {"N": "5"}, "l": {"L": [{"N": "1.5"}]}}},
            "createdAt": {"S": "2025-01-01T00:00:00.000Z"},
        }
        state = state_from_item(item)
        assert state.version == 0 and state.meta.blueprint_id == ""
        assert state.context == {"userId": "u1", "n": 5, "l": [1.5]}

    def test_an_item_with_other_attributes_is_read_one_key_per_attribute(self):
        item = {"runId": {"S": "r"}, "context": {"M": {}}, "blueprintId": {"S": "bp"}}
        assert state_from_item(item).context == {"context": {}, "blueprintId": "bp"}

    def test_reserved_context_keys_are_refused_by_name(self):
        for key in ("runId", "fc:v", ""):
            with pytest.raises(ValueNotStorable, match="context key"):
                item_from_state(RunState("r", {key: 1}, META), 1)


class TestCommitChange:
    def test_a_commit_writes_its_sets_and_removes_its_deletes(self):
        state = stored({"a": 1, "b": 2})
        change = change_for_commit(commit(state, {"c": 3}, frozenset({"a"})), 1)
        assert set(change.sets) == {VERSION_ATTR, META_ATTR, "c"}
        assert change.sets[VERSION_ATTR] == {"N": "2"}
        assert change.removes == ("a",)

    def test_a_key_both_set_and_deleted_is_set(self):
        state = stored({"a": 1})
        change = change_for_commit(commit(state, {"a": 5}, frozenset({"a"})), 1)
        assert "a" in change.sets and change.removes == ()

    def test_the_first_write_of_a_seeded_run_writes_every_key_and_drops_the_wrapper(self):
        seeded = state_from_item({
            "runId": {"S": "r"}, "context": {"M": {"userId": {"S": "u"}}}, "createdAt": {"S": "t"},
        })
        adopted = RunState("r", seeded.context, META, 0, seeded.attr_sizes)
        change = change_for_commit(commit(adopted, {"_outputs.A": 1}), 0)
        assert set(change.sets) == {VERSION_ATTR, META_ATTR, "userId", "_outputs.A"}
        assert change.sets[VERSION_ATTR] == {"N": "1"}
        assert change.removes == ("context", "createdAt")

    def test_a_seeded_context_key_named_context_is_rewritten_not_removed(self):
        seeded = RunState("r", {"context": "mine"}, META, 0, {"runId": 5, "context": 20})
        change = change_for_commit(commit(seeded, {}), 0)
        assert "context" in change.sets and change.removes == ("createdAt",)

    def test_an_unstorable_value_names_its_key(self):
        state = stored({})
        for bad in (float("nan"), float("inf"), b"bytes", {1, 2}, object()):
            with pytest.raises(ValueNotStorable, match="context key 'bad'"):
                change_for_commit(commit(state, {"bad": bad}), 1)


class TestUpdateExpression:
    def test_update_sets_version_and_meta_under_the_version_condition(self):
        state = stored({"a": 1})
        request = update_request("t", change_for_commit(commit(state, {"b.c": 2}, frozenset({"a"})), 1))
        assert request["UpdateExpression"] == "SET #fv = :newv, #fm = :meta, #k0 = :v0 REMOVE #d0"
        assert request["ConditionExpression"] == "#fv = :oldv"
        assert request["ExpressionAttributeValues"][":oldv"] == {"N": "1"}
        assert request["ExpressionAttributeNames"]["#k0"] == "b.c"
        assert request["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
        assert_well_formed(request)

    def test_a_first_write_requires_the_item_to_exist_without_our_version(self):
        seeded = RunState("r", {"x": 1}, META, 0, {})
        request = update_request("t", change_for_commit(commit(seeded, {}), 0))
        assert request["ConditionExpression"] == "attribute_exists(#rid) AND attribute_not_exists(#fv)"
        assert ":oldv" not in request["ExpressionAttributeValues"]
        assert_well_formed(request)

    def test_the_whole_item_put_has_the_same_condition_and_no_empty_values(self):
        seeded = RunState("r", {"x": 1}, META, 0, {})
        change = change_for_commit(commit(seeded, {}), 0)
        request = put_request("t", seeded, change)
        assert "ExpressionAttributeValues" not in request
        assert request["Item"][VERSION_ATTR] == {"N": "1"}
        assert_well_formed(request)

    def test_a_commit_with_hundreds_of_keys_is_too_long_for_one_expression(self):
        many = {f"key{i}": i for i in range(400)}
        request = update_request("t", change_for_commit(commit(stored({}), many), 1))
        assert len(request["UpdateExpression"]) > EXPRESSION_MAX_BYTES  # so the store PUTs instead


class TestSizeAccounting:
    def test_the_new_size_uses_loaded_sizes_for_unchanged_keys(self):
        state = stored({"big": "x" * 1000, "small": 1})
        c = commit(state, {"small": 2})
        change = change_for_commit(c, 1)
        sizes = sizes_after_change(c.state, change)
        assert sizes["big"] == state.attr_sizes["big"]
        assert sizes["small"] == attribute_size("small", {"B": b"2"})
        assert sizes[VERSION_ATTR] == attribute_size(VERSION_ATTR, {"N": "2"})

    def test_deleted_keys_no_longer_count(self):
        state = stored({"big": "x" * 1000, "small": 1})
        c = commit(state, {}, frozenset({"big"}))
        assert "big" not in sizes_after_change(c.state, change_for_commit(c, 1))

    def test_keys_without_a_loaded_size_are_measured(self):
        state = RunState("run-1", {"k": [1, 2, 3]}, META, 1)  # built in memory, no sizes
        c = commit(state, {})
        sizes = sizes_after_change(c.state, change_for_commit(c, 1))
        assert sizes["k"] == 1 + len(encode_value([1, 2, 3]))

    def test_the_sum_equals_the_size_of_the_item_a_put_would_write(self):
        state = stored({"a": {"nested": [1, 2]}, "b": "text"})
        c = commit(state, {"c": 3.5}, frozenset({"a"}))
        change = change_for_commit(c, 1)
        whole = item_sizes(item_from_state(c.state, 2))
        assert sizes_after_change(c.state, change) == whole

    def test_an_oversized_status_result_is_replaced_by_a_summary(self):
        result = result_attribute("completed", {"k": "x" * 5000}, room_bytes=1000)
        assert result["M"]["contextOmitted"] == {"BOOL": True}
        assert int(result["M"]["contextBytes"]["N"]) > 5000
        small = result_attribute("completed", {"k": 1}, room_bytes=1000)
        assert small["M"]["context"] == {"M": {"k": {"N": "1"}}}


def _validation(message: str):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, "UpdateItem")


def test_only_the_item_size_refusal_counts_as_too_large():
    assert is_item_too_large(_validation("Item size has exceeded the maximum allowed size"))
    assert is_item_too_large(_validation("Item size to update has exceeded the maximum allowed size"))
    assert not is_item_too_large(
        _validation("Invalid UpdateExpression: Expression size has exceeded the maximum allowed size")
    )


class TestPatch:
    def test_the_last_op_on_a_key_wins_and_paths_never_overlap(self):
        ops = [
            {"op": "set", "key": "a", "value": 1},
            {"op": "delete", "key": "a"},
            {"op": "set", "key": "b", "value": 2},
            {"op": "set", "key": "b", "value": 3},
        ]
        request = patch_request("t", "r", ops)
        assert request["UpdateExpression"] == "SET #k1 = :v1 REMOVE #k0"
        assert request["ExpressionAttributeValues"] == {":v1": {"B": b"3"}}
        assert_well_formed(request)

    def test_a_deletes_only_patch_sends_no_values(self):
        request = patch_request("t", "r", [{"op": "delete", "key": "a"}])
        assert request["UpdateExpression"] == "REMOVE #k0"
        assert "ExpressionAttributeValues" not in request
        assert_well_formed(request)

    def test_an_empty_patch_is_no_request(self):
        assert patch_request("t", "r", []) is None

    def test_an_unknown_op_is_refused(self):
        with pytest.raises(ValueError, match="'merge'"):
            patch_request("t", "r", [{"op": "merge", "key": "a"}])


class TestLastUpdated:
    def test_epoch_numbers_and_iso_strings_both_parse(self):
        assert parse_last_updated(1700000000) == 1700000000.0
        assert parse_last_updated("1700000000.5") == 1700000000.5
        assert parse_last_updated("2023-11-14T22:13:20.000Z") == 1700000000.0
        assert parse_last_updated("2023-11-14T22:13:20") == 1700000000.0  # naive means UTC
        assert parse_last_updated({"N": "12"}) == 12.0
        assert parse_last_updated({"S": "2023-11-14T22:13:20Z"}) == 1700000000.0

    def test_anything_else_is_none(self):
        for value in (None, True, "yesterday", "NaN", float("inf"), [], {"BOOL": True}):
            assert parse_last_updated(value) is None


class _Throttled:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def get_item(self, **kwargs):
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.calls <= self.failures:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "GetItem")
        return {"Item": None}


class TestRetries:
    def test_throttling_is_retried_with_backoff_then_succeeds(self):
        delays: list[float] = []
        client = _Throttled(failures=2)
        caller = RetryingCaller(client, "t", RetryPolicy(max_attempts=5, sleep=delays.append))
        assert caller("get_item", TableName="t") == {"Item": None}
        assert client.calls == 3 and len(delays) == 2

    def test_persistent_throttling_becomes_a_transient_error(self):
        client = _Throttled(failures=100)
        caller = RetryingCaller(client, "t", RetryPolicy(max_attempts=3, sleep=lambda s: None))
        with pytest.raises(TransientError, match="after 3 attempts"):
            caller("get_item", TableName="t")
        assert client.calls == 3

    def test_backoff_grows_and_is_capped(self):
        policy = RetryPolicy(base_delay_s=0.1, max_delay_s=0.5)
        assert all(0 <= policy.delay_s(0) <= 0.1 for _ in range(50))
        assert all(0 <= policy.delay_s(10) <= 0.5 for _ in range(50))


def test_item_change_is_plain_data():
    change = ItemChange("r", 1, {VERSION_ATTR: {"N": "2"}, META_ATTR: {"B": b"{}"}}, ())
    assert update_request("t", change)["UpdateExpression"] == "SET #fv = :newv, #fm = :meta"
