"""`flowcraft-sqs infra create|show` against the local server, and the Terraform in deploy/.

The CLI finds the server the way it finds real AWS: through boto3's environment
(AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION, credentials).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flowcraft_sqs.cli import main
from flowcraft_sqs.infra import Infrastructure, delete_infrastructure

pytestmark = pytest.mark.aws

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "deploy" / "terraform"
# Where this machine keeps the AWS provider for offline `terraform init` (no registry here).
PLUGIN_DIR = Path(os.environ.get("FLOWCRAFT_TF_PLUGIN_DIR", "/opt/tf-plugins"))
TERRAFORM_TIMEOUT_S = 120


@pytest.fixture
def names() -> dict[str, str]:
    prefix = f"fc-cli-{uuid.uuid4().hex[:10]}"
    return {"queue_name": f"{prefix}-jobs", "dlq_name": f"{prefix}-dlq",
            "context_table": f"{prefix}-contexts", "status_table": f"{prefix}-statuses",
            "coordination_table": f"{prefix}-coordination"}


@pytest.fixture
def cli(local_aws: Any, aws_clients: Any, names: dict[str, str]) -> Iterator[Any]:
    """`cli("create", ...)`: invoke `flowcraft-sqs infra ...` with this test's names."""
    runner = CliRunner()
    env = {**local_aws.env(), "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}

    def invoke(command: str, *extra: str) -> Any:
        args = ["infra", command, *extra]
        for option, value in names.items():
            args += [f"--{option.replace('_', '-')}", value]
        return runner.invoke(main, args, env=env, catch_exceptions=False)

    yield invoke
    queue_url = _queue_url(aws_clients.sqs, names["queue_name"])
    dlq_url = _queue_url(aws_clients.sqs, names["dlq_name"])
    delete_infrastructure(aws_clients.sqs, aws_clients.dynamodb, Infrastructure(
        queue_url or "missing", dlq_url or "missing", "", "", names["context_table"],
        names["status_table"], names["coordination_table"], "runId", "key", "ttl", True))


def _queue_url(sqs: Any, name: str) -> str | None:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except Exception:
        return None


def test_create_is_idempotent_and_prints_only_the_queue_url(cli: Any, aws_clients: Any,
                                                           names: dict[str, str]) -> None:
    # Given no resources, when `infra create` runs twice,
    first, second = cli("create"), cli("create")

    # then both succeed and print the same queue URL, as `aws sqs get-queue-url` would,
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    url = first.stdout.strip()
    assert second.stdout.strip() == url
    assert url == aws_clients.sqs.get_queue_url(QueueName=names["queue_name"])["QueueUrl"]
    # and the queue redrives to its DLQ, and the tables have the seed's keys.
    attributes = aws_clients.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(names["dlq_name"])
    assert int(redrive["maxReceiveCount"]) == 5
    for table, key in ((names["context_table"], "runId"), (names["status_table"], "runId"),
                       (names["coordination_table"], "key")):
        schema = aws_clients.dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
        assert schema == [{"AttributeName": key, "KeyType": "HASH"}]


def test_create_sets_back_queue_settings_that_changed(cli: Any, aws_clients: Any) -> None:
    # Given a queue created with the defaults,
    url = cli("create").stdout.strip()

    # when `create` runs again with other settings,
    result = cli("create", "--visibility-timeout", "120", "--max-receive-count", "3")

    # then the queue has them now.
    assert result.exit_code == 0, result.output
    attributes = aws_clients.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "120"
    assert int(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"]) == 3


def test_create_json_lists_every_resource(cli: Any, names: dict[str, str]) -> None:
    result = cli("create", "--json")
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert made["queue_url"].endswith(names["queue_name"])
    assert made["dlq_url"].endswith(names["dlq_name"])
    assert made["coordination_key"] == "key" and made["ttl_attribute"] == "ttl"


def test_show_reports_what_exists_and_fails_on_anything_missing(cli: Any,
                                                                names: dict[str, str]) -> None:
    # Given nothing yet, `show` exits 1 and says what to run.
    missing = cli("show")
    assert missing.exit_code == 1
    assert f"queue {names['queue_name']}: MISSING" in missing.stdout
    assert "flowcraft-sqs infra create" in missing.stderr

    # Given everything, `show` exits 0 and reports the keys and the redrive policy.
    cli("create")
    shown = cli("show")
    assert shown.exit_code == 0, shown.output
    assert f"table {names['coordination_table']}: ACTIVE" in shown.stdout
    assert "key: runId" in shown.stdout and "key: key" in shown.stdout
    assert "after 5 receives" in shown.stdout
    report = json.loads(cli("show", "--json").stdout)
    assert all(part["exists"] for part in report.values())


def test_create_rejects_impossible_settings_with_a_readable_error(cli: Any) -> None:
    result = cli("create", "--max-receive-count", "0")
    assert result.exit_code == 1
    assert "max_receive_count 0 must be 1..1000" in result.stderr


# --- Terraform ---------------------------------------------------------------------------

def _terraform_workdir(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    if not (PLUGIN_DIR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"no offline AWS provider in {PLUGIN_DIR} (FLOWCRAFT_TF_PLUGIN_DIR)")
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_CLI_CONFIG_FILE": os.devnull,
           "CHECKPOINT_DISABLE": "1"}
    return tmp_path / "deploy" / "terraform", env


def _terraform(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["terraform", *args], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=TERRAFORM_TIMEOUT_S)


@pytest.mark.timeout(2 * TERRAFORM_TIMEOUT_S)
def test_terraform_is_formatted_and_valid(tmp_path: Path) -> None:
    workdir, env = _terraform_workdir(tmp_path)
    fmt = _terraform(workdir, env, "fmt", "-check", "-diff", "-no-color")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    init = _terraform(workdir, env, "init", "-backend=false", "-input=false", "-no-color",
                      f"-plugin-dir={PLUGIN_DIR}")
    assert init.returncode == 0, init.stdout + init.stderr
    valid = _terraform(workdir, env, "validate", "-no-color")
    assert valid.returncode == 0, valid.stdout + valid.stderr


@pytest.mark.timeout(2 * TERRAFORM_TIMEOUT_S)
def test_terraform_plans_the_seed_resources_plus_dlq_and_policy(tmp_path: Path) -> None:
    # Given the configuration and a provider that never calls AWS (a fresh plan needs no reads),
    workdir, env = _terraform_workdir(tmp_path)
    (workdir / "offline_provider.tf").write_text(
        'provider "aws" {\n  region = "us-east-1"\n  access_key = "test"\n'
        '  secret_key = "test"\n  skip_credentials_validation = true\n'
        '  skip_requesting_account_id = true\n  skip_metadata_api_check = true\n}\n')
    assert _terraform(workdir, env, "init", "-backend=false", "-input=false", "-no-color",
                      f"-plugin-dir={PLUGIN_DIR}").returncode == 0

    # when it is planned,
    plan = _terraform(workdir, env, "plan", "-input=false", "-no-color", "-refresh=false",
                      "-out=plan.out")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    shown = json.loads(_terraform(workdir, env, "show", "-json", "plan.out").stdout)

    # then it creates the seed's queue and tables (same names and keys), the DLQ and the policy.
    planned = {c["address"]: c["change"]["after"] for c in shown["resource_changes"]}
    assert planned["aws_sqs_queue.flowcraft_jobs"]["name"] == "flowcraft-jobs"
    assert planned["aws_sqs_queue.flowcraft_jobs_dlq"]["name"] == "flowcraft-jobs-dlq"
    tables = {after["name"]: after["hash_key"] for address, after in planned.items()
              if address.startswith("aws_dynamodb_table.")}
    assert tables == {"flowcraft-contexts": "runId", "flowcraft-statuses": "runId",
                      "flowcraft-coordination": "key"}
    assert planned["aws_iam_policy.flowcraft_worker"]["name"] == "flowcraft-worker"
    assert "aws_sqs_queue_redrive_allow_policy.flowcraft_jobs_dlq" in planned


# --- the seed document's AWS CLI commands, verbatim ---------------------------------------

SEED_CLI_COMMANDS = [
    "aws sqs create-queue --queue-name flowcraft-jobs",
    """aws dynamodb create-table \\
  --table-name flowcraft-contexts \\
  --attribute-definitions AttributeName=runId,AttributeType=S \\
  --key-schema AttributeName=runId,KeyType=HASH \\
  --billing-mode PAY_PER_REQUEST""",
    """aws dynamodb create-table \\
  --table-name flowcraft-statuses \\
  --attribute-definitions AttributeName=runId,AttributeType=S \\
  --key-schema AttributeName=runId,KeyType=HASH \\
  --billing-mode PAY_PER_REQUEST""",
    """aws dynamodb create-table \\
  --table-name flowcraft-coordination \\
  --attribute-definitions AttributeName=key,AttributeType=S \\
  --key-schema AttributeName=key,KeyType=HASH \\
  --billing-mode PAY_PER_REQUEST""",
]
SEED_QUEUE_URL_COMMAND = "aws sqs get-queue-url --queue-name flowcraft-jobs --output text"


@pytest.mark.timeout(180)
def test_the_seed_documents_aws_cli_commands_make_a_working_setup_and_infra_create_adds_the_dlq(
        capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("aws") is None:
        pytest.skip("the AWS CLI is not installed")
    from flowcraft_sqs.aws import make_clients
    from flowcraft_sqs.examples import client as seed_client
    from flowcraft_sqs.examples.worker import make_adapter
    from flowcraft_sqs.local import start_local_aws

    # Given a server of our own (the seed's names are fixed) and the seed's commands, verbatim
    # but for `--endpoint-url` (AWS CLI v1 ignores AWS_ENDPOINT_URL* for SQS),
    aws = start_local_aws()
    env = {**os.environ, **aws.env(), "AWS_PAGER": ""}

    def seed_cli(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(f"{command} --endpoint-url {aws.sqs_endpoint}", shell=True,
                              env=env, capture_output=True, text=True, timeout=60)

    try:
        for command in SEED_CLI_COMMANDS:
            done = seed_cli(command)
            assert done.returncode == 0, f"{command}\n{done.stderr}"
        queue_url = seed_cli(SEED_QUEUE_URL_COMMAND).stdout.strip()
        assert queue_url.endswith("/flowcraft-jobs")

        # when the seed's worker and client (in Python) run on what they made,
        saved = dict(os.environ)
        os.environ.update(aws.env())
        try:
            clients = make_clients()
            adapter = make_adapter(clients.sqs, clients.dynamodb, queue_url, wait_time_seconds=1)
            adapter.start()
            try:
                outcome = seed_client.main(clients.sqs, clients.dynamodb, queue_url,
                                           timeout_ms=30_000)
            finally:
                adapter.stop(timeout=10)
            # and `infra create` runs on top of them,
            created = CliRunner().invoke(main, ["infra", "create"], catch_exceptions=False)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        attributes = clients.sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])["Attributes"]
    finally:
        aws.stop()

    # then the run completed, and `infra create` kept the queue and added its DLQ.
    assert outcome["status"] == "completed"
    assert "Final Output: action_redact: post by user-456" in capsys.readouterr().out
    assert created.exit_code == 0, created.output
    assert created.stdout.strip() == queue_url
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith(
        ":flowcraft-jobs-dlq")
