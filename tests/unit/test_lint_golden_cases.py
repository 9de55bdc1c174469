"""The linter agrees with loading on every golden workflow in tests/cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowcraft_sqs import lint_blueprint, load_blueprint
from tests.cases.behaviours import Behaviours

CASES = sorted(Path(__file__).parents[1].joinpath("cases").glob("*.json"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_a_golden_blueprint_that_loads_lints_without_errors(path: Path) -> None:
    case = json.loads(path.read_text())
    registry = Behaviours().registry
    load_blueprint(case["blueprint"], registry=registry)
    result = lint_blueprint(case["blueprint"], registry, blueprints=case.get("blueprints", {}))
    # Loading does not look at other blueprints; a subflow naming a missing one fails its run.
    assert {issue.code for issue in result.errors} <= {"INVALID_SUBFLOW_BLUEPRINT_ID"}
