"""The IAM policy for workers and clients (deploy/iam-policy.json, which Terraform renders)
grants exactly the AWS operations the package's code calls, each on the one resource the
calling class works on: the policy cannot drift from the code in either direction.

The code is read, not run: every SQS or DynamoDB operation name (taken from botocore's
service models) that appears as a method call (`client.get_item(`) or as a string argument
(`self._call("get_item", ...)`) is attributed to the top-level class or module that holds it.
"""

from __future__ import annotations

import ast
import json
import re
import string
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "flowcraft_sqs"
POLICY = REPO / "deploy" / "iam-policy.json"
MAIN_TF = REPO / "deploy" / "terraform" / "main.tf"
VARIABLES_TF = REPO / "deploy" / "terraform" / "variables.tf"

# Template variable of each resource the policy may name (Terraform fills in the ARNs).
RESOURCE_VARIABLES = {
    "queue": "queue_arn",
    "contexts": "context_table_arn",
    "statuses": "status_table_arn",
    "coordination": "coordination_table_arn",
}
DLQ_VARIABLE = "dlq_arn"  # allowed as a resource, though nothing in the code needs it
SERVICE_OF = {"queue": "sqs", "contexts": "dynamodb", "statuses": "dynamodb",
              "coordination": "dynamodb"}

# Who calls AWS, and on which resource. (module, top-level class or "<module>") -> a role,
# or {operation: [roles]} where one function works on several resources.
ROLES: dict[tuple[str, str], str | dict[str, list[str]]] = {
    ("transport/sqs.py", "SqsQueue"): "queue",
    ("lambda_handler.py", "<module>"): "queue",  # looks up the queue URL of its event source
    ("stores/dynamodb.py", "DynamoRunStore"): "contexts",
    ("stores/dynamodb.py", "DynamoDbContext"): "contexts",
    ("stores/dynamodb.py", "DynamoStatusTable"): "statuses",
    ("stores/dynamodb.py", "DynamoDbCoordinationStore"): "coordination",
    ("reconciler.py", "SqsReconciler"): "statuses",
    # The seed document's client.ts, in Python: what a user's own client service calls.
    ("examples/client.py", "<module>"): {
        "put_item": ["contexts", "statuses"],
        "get_item": ["statuses"],
        "send_message_batch": ["queue"],
    },
}

# Code that runs with an operator's or a test's credentials, never a worker's or client's.
NOT_WORKER_CODE = {
    "infra.py": "creates queues and tables: deploy-time credentials",
    "infra_cli.py": "`flowcraft-sqs infra`: deploy-time credentials",
    "local": "local emulators",
    "loadtest": "load tests, against local servers or a test stack",
    "testing": "test fixtures",
}

# Batch API calls that IAM authorises with the single-message action.
IAM_ACTION_OF = {
    "DeleteMessageBatch": "DeleteMessage",
    "SendMessageBatch": "SendMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def operation_names() -> dict[str, str]:
    """snake_case -> PascalCase of every SQS and DynamoDB operation botocore knows."""
    from botocore import xform_name
    from botocore.session import get_session

    session = get_session()
    return {xform_name(op): op for service in ("sqs", "dynamodb")
            for op in session.get_service_model(service).operation_names}


def aws_calls() -> dict[tuple[str, str], set[str]]:
    """(module, owner) -> snake_case operations its code names, for every worker module."""
    operations = operation_names()
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module in NOT_WORKER_CODE or module.split("/")[0] in NOT_WORKER_CODE:
            continue
        for top in ast.parse(path.read_text()).body:
            owner = top.name if isinstance(top, ast.ClassDef) else "<module>"
            for node in ast.walk(top):
                if isinstance(node, ast.Call):
                    found[(module, owner)] |= _named_operations(node, operations)
    return {key: ops for key, ops in found.items() if ops}


def _named_operations(call: ast.Call, operations: dict[str, str]) -> set[str]:
    names = set()
    if isinstance(call.func, ast.Attribute) and call.func.attr in operations:
        names.add(call.func.attr)
    for arg in call.args:
        if isinstance(arg, ast.Constant) and arg.value in operations:
            names.add(arg.value)
    return names


def iam_action(operation: str) -> str:
    pascal = operation_names()[operation]
    return IAM_ACTION_OF.get(pascal, pascal)


def actions_the_code_needs() -> dict[str, set[str]]:
    """role -> IAM actions (`sqs:SendMessage`) the code calls on that resource."""
    needed: dict[str, set[str]] = defaultdict(set)
    for (module, owner), operations in aws_calls().items():
        role = ROLES.get((module, owner))
        assert role is not None, (
            f"{module}:{owner} calls {sorted(operations)}: add it to ROLES (which resource it "
            "works on) and its actions to deploy/iam-policy.json, or to NOT_WORKER_CODE")
        for operation in operations:
            roles = [role] if isinstance(role, str) else role[operation]
            for r in roles:
                needed[r].add(f"{SERVICE_OF[r]}:{iam_action(operation)}")
    return dict(needed)


def rendered_policy() -> dict:
    fake_arns = {var: f"arn:test:{var}" for var in [*RESOURCE_VARIABLES.values(), DLQ_VARIABLE]}
    return json.loads(string.Template(POLICY.read_text()).substitute(fake_arns))


def granted() -> dict[str, set[str]]:
    """role -> IAM actions the policy allows on that role's resource."""
    role_of_arn = {f"arn:test:{var}": role for role, var in RESOURCE_VARIABLES.items()}
    role_of_arn[f"arn:test:{DLQ_VARIABLE}"] = "dlq"
    grants: dict[str, set[str]] = defaultdict(set)
    for statement in rendered_policy()["Statement"]:
        actions = statement["Action"]
        resources = statement["Resource"]
        for arn in [resources] if isinstance(resources, str) else resources:
            grants[role_of_arn[arn]] |= set([actions] if isinstance(actions, str) else actions)
    return dict(grants)


def test_every_aws_call_in_worker_code_is_attributed_to_a_resource() -> None:
    # Given the package's source, when its AWS calls are collected,
    # then each one belongs to a class or module whose resource is known.
    calls = aws_calls()
    assert calls, "the scan found no AWS calls at all: is it still reading the right code?"
    unknown = sorted(key for key in calls if key not in ROLES)
    assert not unknown, f"AWS calls in {unknown}: add them to ROLES or NOT_WORKER_CODE"
    stale = sorted(key for key in ROLES if key not in calls)
    assert not stale, f"ROLES names {stale}, which no longer call AWS: remove them"


def test_the_policy_grants_exactly_what_the_code_calls() -> None:
    # Given the policy and the code, then per resource the actions are the same sets:
    # nothing the code calls is missing, and nothing is granted that no code calls.
    needed, policy = actions_the_code_needs(), granted()
    for role in sorted(set(needed) | set(policy)):
        missing = needed.get(role, set()) - policy.get(role, set())
        extra = policy.get(role, set()) - needed.get(role, set())
        assert not missing, f"{role}: the code calls {sorted(missing)}, the policy lacks them"
        assert not extra, f"{role}: the policy grants {sorted(extra)}, no code calls them"


def test_the_policy_has_no_wildcards_and_only_allows() -> None:
    policy = rendered_policy()
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        text = json.dumps([statement["Action"], statement["Resource"]])
        assert "*" not in text, f"{statement['Sid']}: wildcard in {text}"


def test_the_derived_actions_are_the_ones_we_expect() -> None:
    # A readable record of the result (the tests above keep it true).
    assert actions_the_code_needs() == {
        "queue": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:SendMessage",
                  "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"},
        "contexts": {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
                     "dynamodb:UpdateItem"},
        "statuses": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                     "dynamodb:Scan"},
        "coordination": {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
    }


def test_terraform_renders_the_policy_with_every_template_variable() -> None:
    # main.tf passes templatefile() exactly the variables the JSON uses.
    used = set(re.findall(r"\$\{(\w+)\}", POLICY.read_text()))
    call = re.search(r'templatefile\("\$\{path\.module\}/\.\./iam-policy\.json",\s*\{(.*?)\}\)',
                     MAIN_TF.read_text(), re.DOTALL)
    assert call, "main.tf no longer renders deploy/iam-policy.json with templatefile()"
    passed = set(re.findall(r"^\s*(\w+)\s*=", call.group(1), re.MULTILINE))
    assert used == passed


def _resource_block(kind: str, name: str) -> str:
    text = MAIN_TF.read_text()
    start = text.index(f'resource "{kind}" "{name}"')
    end = text.find("\nresource ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _default(variable: str) -> str:
    block = VARIABLES_TF.read_text().split(f'variable "{variable}"', 1)[1]
    match = re.search(r'default\s*=\s*"([^"]*)"', block)
    assert match, f"variable {variable} has no string default"
    return match.group(1)


@pytest.mark.parametrize(("resource", "name_variable", "seed_name", "key"), [
    ("flowcraft_contexts", "context_table_name", "flowcraft-contexts", '"runId"'),
    ("flowcraft_statuses", "status_table_name", "flowcraft-statuses", '"runId"'),
    ("flowcraft_coordination", "coordination_table_name", "flowcraft-coordination",
     "var.coordination_key"),
])
def test_terraform_tables_keep_the_seed_names_and_keys_and_are_encrypted(
        resource: str, name_variable: str, seed_name: str, key: str) -> None:
    block = _resource_block("aws_dynamodb_table", resource)
    assert f"var.{name_variable}" in block and _default(name_variable) == seed_name
    assert re.search(rf"hash_key\s*=\s*{re.escape(key)}", block)
    assert re.search(r'billing_mode\s*=\s*"PAY_PER_REQUEST"', block)
    assert re.search(r"server_side_encryption\s*\{\s*enabled\s*=\s*true", block)
    assert re.search(r"point_in_time_recovery\s*\{\s*enabled\s*=\s*var\.point_in_time_recovery",
                     block)
    assert _default("coordination_key") == "key"


def test_terraform_queues_are_encrypted_and_the_jobs_queue_redrives_to_the_dlq() -> None:
    jobs = _resource_block("aws_sqs_queue", "flowcraft_jobs")
    dlq = _resource_block("aws_sqs_queue", "flowcraft_jobs_dlq")
    assert _default("queue_name") == "flowcraft-jobs"
    for block in (jobs, dlq):
        assert re.search(r"sqs_managed_sse_enabled\s*=\s*true", block)
    assert "deadLetterTargetArn = aws_sqs_queue.flowcraft_jobs_dlq.arn" in jobs
    assert "maxReceiveCount     = var.max_receive_count" in jobs
    assert "visibility_timeout_seconds = var.visibility_timeout_seconds" in jobs
    coordination = _resource_block("aws_dynamodb_table", "flowcraft_coordination")
    assert re.search(r'ttl\s*\{\s*attribute_name\s*=\s*"ttl"\s*enabled\s*=\s*true', coordination)
