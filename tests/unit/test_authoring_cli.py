"""`flowcraft-sqs lint` and `flowcraft-sqs graph` against a small app."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowcraft_sqs.cli import main

APP = """
registry = {"node": lambda ctx: {}}
blueprints = [
    {"id": "good", "nodes": [{"id": "A", "uses": "node"}, {"id": "B", "uses": "node"}],
     "edges": [{"source": "A", "target": "B"}]},
    {"id": "bad", "nodes": [{"id": "A", "uses": "missing"}], "edges": [{"source": "A", "target": "Z"}]},
    {"id": "cyclic", "nodes": [{"id": "A", "uses": "node"}, {"id": "B", "uses": "node"}],
     "edges": [{"source": "A", "target": "B"}, {"source": "B", "target": "A"}]},
]
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"lint_app_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(APP))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_lint_prints_every_issue_and_exits_1_when_a_blueprint_has_an_error(app: str) -> None:
    code, output = run("lint", "--app", app)
    assert code == 1
    assert "bad: error: MISSING_NODE_IMPLEMENTATION" in output
    assert "bad: error: INVALID_EDGE_TARGET" in output
    assert "good:" not in output.replace("3 blueprints", "")


def test_lint_of_a_clean_blueprint_exits_0(app: str) -> None:
    code, output = run("lint", "--app", app, "good")
    assert code == 0
    assert "1 blueprint checked: ok" in output


def test_warnings_pass_unless_strict(app: str) -> None:
    assert run("lint", "--app", app, "cyclic")[0] == 0
    code, output = run("lint", "--app", app, "cyclic", "--strict")
    assert code == 1
    assert "warning: CYCLE_WITHOUT_LOOP_CONTROLLER" in output


def test_an_unknown_blueprint_id_is_a_usage_error(app: str) -> None:
    code, output = run("lint", "--app", app, "nope")
    assert code == 2
    assert "no blueprint 'nope' in the app (it has: bad, cyclic, good)" in output


def test_an_app_that_cannot_be_imported_exits_with_the_app_load_code() -> None:
    code, output = run("lint", "--app", "no_such_module_for_lint")
    assert code == 4
    assert "cannot import module 'no_such_module_for_lint'" in output


def test_graph_prints_the_blueprint_as_mermaid(app: str) -> None:
    code, output = run("graph", "good", "--app", app)
    assert code == 0
    assert output == 'flowchart TD\n    A["A"]\n    B["B"]\n    A --> B\n'


def test_graph_draws_a_blueprint_a_worker_would_refuse(app: str) -> None:
    code, output = run("graph", "bad", "--app", app)
    assert code == 0
    assert "A --> Z" in output
