"""The local-server fixtures work, `ensure_infrastructure` builds what we need, and the
DynamoDB behaviours the stores rely on hold on the server under test.

Probed on ministack 1.5.33, DynamoDB Local 3.3.0 and moto 5.2.5: all agree with AWS except
moto, which stores numbers as written ("1.0" reads back "1.0"; AWS normalizes it to "1").
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError

from flowcraft_sqs.infra import (
    DLQ_RETENTION_S,
    InfrastructureError,
    delete_infrastructure,
    ensure_infrastructure,
)

pytestmark = pytest.mark.aws

# Servers known to keep a number's text as written instead of normalizing it like AWS.
NUMBERS_NOT_NORMALIZED = {"moto"}


def _attrs(sqs, url: str) -> dict[str, str]:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def _key(table_desc: dict) -> tuple[list, dict]:
    schema = [(k["AttributeName"], k["KeyType"]) for k in table_desc["KeySchema"]]
    types = {a["AttributeName"]: a["AttributeType"] for a in table_desc["AttributeDefinitions"]}
    return schema, types


# --- fixtures and ensure_infrastructure ---

def test_local_aws_env_points_at_the_servers(local_aws):
    env = local_aws.env()
    assert env["AWS_ENDPOINT_URL_SQS"] == local_aws.sqs_endpoint
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == local_aws.dynamodb_endpoint
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert all(server.running() for server in local_aws.servers)


def test_queue_has_dlq_redrive(aws_clients, infra):
    main, dlq = _attrs(aws_clients.sqs, infra.queue_url), _attrs(aws_clients.sqs, infra.dlq_url)
    redrive = json.loads(main["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq["QueueArn"] == infra.dlq_arn
    assert int(redrive["maxReceiveCount"]) == 5
    assert main["VisibilityTimeout"] == "60"
    assert dlq["MessageRetentionPeriod"] == str(DLQ_RETENTION_S)


def test_tables_have_the_right_key_schema(aws_clients, infra):
    expected = {infra.context_table: "runId", infra.status_table: "runId",
                infra.coordination_table: "key"}
    for table, key in expected.items():
        desc = aws_clients.dynamodb.describe_table(TableName=table)["Table"]
        assert desc["TableStatus"] == "ACTIVE"
        assert _key(desc) == ([(key, "HASH")], {key: "S"})


def test_coordination_key_is_configurable(aws_clients, make_infra):
    infra = make_infra(coordination_key="pk", run_id_key="id")
    desc = aws_clients.dynamodb.describe_table(TableName=infra.coordination_table)["Table"]
    assert _key(desc) == ([("pk", "HASH")], {"pk": "S"})
    desc = aws_clients.dynamodb.describe_table(TableName=infra.status_table)["Table"]
    assert _key(desc) == ([("id", "HASH")], {"id": "S"})


def test_ttl_is_enabled_on_the_coordination_table(aws_clients, infra):
    assert infra.ttl_enabled
    desc = aws_clients.dynamodb.describe_time_to_live(TableName=infra.coordination_table)
    assert desc["TimeToLiveDescription"]["TimeToLiveStatus"] in {"ENABLED", "ENABLING"}
    assert desc["TimeToLiveDescription"]["AttributeName"] == "ttl"


def _same_names(infra) -> dict[str, str]:
    return {"queue_name": infra.queue_url.rsplit("/", 1)[1],
            "dlq_name": infra.dlq_url.rsplit("/", 1)[1],
            "context_table": infra.context_table, "status_table": infra.status_table,
            "coordination_table": infra.coordination_table}


def test_ensure_infrastructure_is_idempotent(aws_clients, infra):
    again = ensure_infrastructure(aws_clients.sqs, aws_clients.dynamodb, **_same_names(infra))
    assert again == infra


def test_ensure_infrastructure_updates_drifted_queue_attributes(aws_clients, infra):
    again = ensure_infrastructure(aws_clients.sqs, aws_clients.dynamodb, **_same_names(infra),
                                  visibility_timeout_s=30, max_receive_count=2)
    main = _attrs(aws_clients.sqs, again.queue_url)
    assert main["VisibilityTimeout"] == "30"
    assert int(json.loads(main["RedrivePolicy"])["maxReceiveCount"]) == 2


def test_a_table_with_another_key_schema_is_reported(aws_clients, infra):
    names = {**_same_names(infra), "coordination_table": infra.context_table + "-x",
             "context_table": infra.coordination_table}  # its hash key is `key`, not `runId`
    with pytest.raises(InfrastructureError, match="key schema"):
        ensure_infrastructure(aws_clients.sqs, aws_clients.dynamodb, **names)
    aws_clients.dynamodb.delete_table(TableName=names["coordination_table"])


def test_invalid_settings_are_refused_before_any_call(aws_clients):
    with pytest.raises(InfrastructureError, match="max_receive_count"):
        ensure_infrastructure(aws_clients.sqs, aws_clients.dynamodb, max_receive_count=0)


def test_delete_infrastructure_tolerates_missing_resources(aws_clients, make_infra):
    infra = make_infra()
    delete_infrastructure(aws_clients.sqs, aws_clients.dynamodb, infra)
    delete_infrastructure(aws_clients.sqs, aws_clients.dynamodb, infra)


def test_a_message_round_trips(aws_clients, infra):
    sqs = aws_clients.sqs
    sqs.send_message(QueueUrl=infra.queue_url, MessageBody='{"job": 1}')
    got = sqs.receive_message(QueueUrl=infra.queue_url, MaxNumberOfMessages=10,
                              WaitTimeSeconds=5, AttributeNames=["ApproximateReceiveCount"])
    [msg] = got["Messages"]
    assert msg["Body"] == '{"job": 1}'
    assert msg["Attributes"]["ApproximateReceiveCount"] == "1"
    sqs.delete_message(QueueUrl=infra.queue_url, ReceiptHandle=msg["ReceiptHandle"])
    again = sqs.receive_message(QueueUrl=infra.queue_url, WaitTimeSeconds=0)
    assert again.get("Messages", []) == []


# --- DynamoDB behaviours the stores assume ---

@pytest.fixture
def table(aws_clients, infra):
    return infra.context_table


def _get(ddb, table: str, run_id: str) -> dict:
    return ddb.get_item(TableName=table, Key={"runId": {"S": run_id}},
                        ConsistentRead=True).get("Item", {})


def test_numbers_read_back_equal_and_normalized_like_aws(aws_clients, table, aws_backend):
    ddb = aws_clients.dynamodb
    ddb.put_item(TableName=table, Item={"runId": {"S": "n"}, "n": {"N": "1.0"},
                                        "m": {"N": "0100.500"}})
    item = _get(ddb, table, "n")
    # What the stores may rely on: the value, never the text it was written with.
    assert Decimal(item["n"]["N"]) == 1 and Decimal(item["m"]["N"]) == Decimal("100.5")
    if aws_backend not in NUMBERS_NOT_NORMALIZED:
        assert (item["n"]["N"], item["m"]["N"]) == ("1", "100.5")


def test_failed_condition_returns_the_old_item(aws_clients, table):
    ddb = aws_clients.dynamodb
    ddb.put_item(TableName=table, Item={"runId": {"S": "c"}, "v": {"N": "3"}})
    with pytest.raises(ClientError) as info:
        ddb.update_item(
            TableName=table, Key={"runId": {"S": "c"}}, UpdateExpression="SET v = :new",
            ConditionExpression="v = :expected",
            ExpressionAttributeValues={":new": {"N": "4"}, ":expected": {"N": "2"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert info.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert info.value.response["Item"] == {"runId": {"S": "c"}, "v": {"N": "3"}}


def test_batch_get_with_consistent_read(aws_clients, table):
    ddb = aws_clients.dynamodb
    for run_id in ("b1", "b2"):
        ddb.put_item(TableName=table, Item={"runId": {"S": run_id}})
    keys = [{"runId": {"S": r}} for r in ("b1", "b2", "missing")]
    out = ddb.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
    assert sorted(i["runId"]["S"] for i in out["Responses"][table]) == ["b1", "b2"]
    assert not out.get("UnprocessedKeys")


def test_transact_write_items_is_all_or_nothing(aws_clients, table):
    ddb = aws_clients.dynamodb
    ddb.put_item(TableName=table, Item={"runId": {"S": "t"}, "v": {"N": "1"}})
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": table, "Item": {"runId": {"S": "t1"}}}},
        {"Update": {"TableName": table, "Key": {"runId": {"S": "t"}},
                    "UpdateExpression": "SET v = v + :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
    ])
    assert _get(ddb, table, "t")["v"] == {"N": "2"} and _get(ddb, table, "t1")
    with pytest.raises(ClientError) as info:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": {"runId": {"S": "t2"}}}},
            {"ConditionCheck": {"TableName": table, "Key": {"runId": {"S": "t"}},
                                "ConditionExpression": "v = :x",
                                "ExpressionAttributeValues": {":x": {"N": "99"}}}},
        ])
    assert info.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert _get(ddb, table, "t2") == {}


def test_dotted_and_colon_attribute_names_via_placeholders(aws_clients, table):
    ddb = aws_clients.dynamodb
    names = {"#out": "_outputs.A", "#ver": "fc:v", "#old": "gone.x:y"}
    ddb.put_item(TableName=table, Item={"runId": {"S": "e"}, "fc:v": {"N": "1"},
                                        "gone.x:y": {"S": "bye"}})
    ddb.update_item(
        TableName=table, Key={"runId": {"S": "e"}},
        UpdateExpression="SET #out = :out, #ver = #ver + :one REMOVE #old",
        ConditionExpression="#ver = :one AND attribute_not_exists(#out)",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={":out": {"S": "done"}, ":one": {"N": "1"}})
    assert _get(ddb, table, "e") == {"runId": {"S": "e"}, "_outputs.A": {"S": "done"},
                                     "fc:v": {"N": "2"}}
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        ddb.update_item(TableName=table, Key={"runId": {"S": "e"}}, UpdateExpression="SET #out = :x",
                        ConditionExpression="#ver = :one",
                        ExpressionAttributeNames={"#out": "_outputs.A", "#ver": "fc:v"},
                        ExpressionAttributeValues={":x": {"S": "x"}, ":one": {"N": "1"}})


def test_binary_values_round_trip(aws_clients, table):
    ddb = aws_clients.dynamodb
    blob = bytes(range(256)) + uuid.uuid4().bytes
    ddb.put_item(TableName=table, Item={"runId": {"S": "b"}, "b": {"B": blob}})
    assert _get(ddb, table, "b")["b"]["B"] == blob
