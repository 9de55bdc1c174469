"""Settings.validate: every bad value is refused with a message that says how to fix it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from flowcraft_sqs.cli import main, settings_from_options, worker
from flowcraft_sqs.config import SQS_MAX_BATCH, Settings
from flowcraft_sqs.errors import EXIT_CONFIG, ConfigError

GOOD = Settings(app="myflows", queue_url="https://sqs.example/q", procs=4)


def test_good_settings_validate() -> None:
    assert GOOD.validate() is GOOD


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"app": ""}, "--app is required"),
        ({"queue_url": ""}, "--queue-url is required"),
        ({"procs": 0}, "--procs must be at least 1"),
        ({"receivers": 5}, "lower --receivers"),
        ({"wait_time_s": 21}, "--wait-time must be between 0 and 20"),
        ({"receive_batch": 11}, "--receive-batch must be between 1 and 10"),
        ({"visibility_timeout_s": 43201}, "12 h limit"),
        ({"lease_fraction": 0.95}, "--lease-fraction must be between"),
        ({"visibility_timeout_s": 2, "flush_max_age_ms": 1500}, "--visibility-timeout must be at least 2x the flush age"),
        ({"visibility_timeout_s": 1}, "raising --visibility-timeout or lowering --lease-fraction"),
        ({"flush_max_items": 0}, "--flush-max-items"),
        ({"graceful_timeout_s": 0}, "--graceful-timeout must be positive"),
        ({"pulse_timeout_s": 1}, "--pulse-timeout must be at least"),
        ({"log_format": "xml"}, "--log-format must be one of"),
        ({"log_level": "LOUD"}, "--log-level must be one of"),
        ({"metrics_port": 70000}, "--metrics-port"),
        ({"backend": "redis"}, "--backend must be one of"),
        ({"memory_seed": "x:y"}, "--memory-seed only applies with --backend memory"),
    ],
)
def test_bad_values_are_refused_with_a_fix(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        GOOD.with_changes(**changes).validate()


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        GOOD.with_changes(procs=0, wait_time_s=30).validate()
    assert "--procs" in str(info.value) and "--wait-time" in str(info.value)


def test_memory_backend_needs_no_queue_url() -> None:
    Settings(app="x", backend="memory").validate()


def test_admission_is_every_executor_slot_plus_a_small_surplus() -> None:
    assert Settings(app="x", procs=8, receivers=2).admitted_per_receiver == 402  # (8 x 100 + 4) / 2
    assert Settings(app="x", procs=32, concurrency=1).admitted_per_receiver == 40  # 32 + 32 / 4
    assert Settings(app="x", procs=2, concurrency=1).admitted_per_receiver == 6  # at least four extra
    assert Settings(app="x", procs=2, concurrency=1, prefetch=0).admitted_per_receiver == 2
    assert Settings(app="x", procs=2, concurrency=1000).admitted_per_receiver == 2004


def test_untaken_work_is_bounded_to_a_receive_batch_or_the_prefetch() -> None:
    assert Settings(app="x", procs=2).queued_per_receiver == 10  # one receive batch
    assert Settings(app="x", procs=2, prefetch=40, receivers=2).queued_per_receiver == 20


def test_threads_cannot_exceed_the_slots_they_share() -> None:
    with pytest.raises(ConfigError, match="--threads 16 is more than --concurrency 8"):
        Settings(app="x", backend="memory", concurrency=8, threads=16).validate()
    with pytest.raises(ConfigError, match="--concurrency must be between 1 and 10000"):
        Settings(app="x", backend="memory", concurrency=0).validate()


def test_options_map_onto_settings_fields_with_their_units() -> None:
    s = settings_from_options({"app": "x", "queue_url": "q", "visibility_timeout": 90, "flush_max_age": 20})
    assert s.visibility_timeout_s == 90 and s.flush_max_age_ms == 20


def test_every_option_can_come_from_a_flowcraft_environment_variable(monkeypatch) -> None:
    seen: dict = {}
    monkeypatch.setattr("flowcraft_sqs.supervisor.Supervisor.run", lambda self: seen.setdefault("s", self.settings) and 0)
    env = {"FLOWCRAFT_APP": "tests.process.workerapp", "SQS_QUEUE_URL": "https://q",
           "FLOWCRAFT_VISIBILITY_TIMEOUT": "120", "FLOWCRAFT_PROCS": "3", "AWS_REGION": "eu-west-1",
           "FLOWCRAFT_NO_LOCAL_CONTINUATION": "1"}
    result = CliRunner().invoke(worker, [], env=env)
    assert result.exit_code == 0, result.output
    settings = seen["s"]
    assert (settings.queue_url, settings.visibility_timeout_s, settings.procs, settings.region) == \
        ("https://q", 120, 3, "eu-west-1")


def test_a_bad_setting_exits_with_ex_config_and_the_fix() -> None:
    result = CliRunner().invoke(worker, ["--app", "x", "--queue-url", "q", "--receive-batch", str(SQS_MAX_BATCH + 1)])
    assert result.exit_code == EXIT_CONFIG
    assert "--receive-batch must be between 1 and 10" in result.output


def test_the_command_group_offers_the_worker() -> None:
    result = CliRunner().invoke(main, ["worker", "--help"])
    assert result.exit_code == 0 and "--procs" in result.output and "FLOWCRAFT_PROCS" in result.output
