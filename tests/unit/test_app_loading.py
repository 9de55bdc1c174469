"""--app loading: what a worker needs, and errors that name what is missing."""

from __future__ import annotations

import sys
import types

import pytest

from flowcraft_sqs.app import AppLoadError, load_app

BLUEPRINT = {"id": "one", "nodes": [{"id": "a", "uses": "noop"}]}


def noop(ctx):
    return {"output": 1}


@pytest.fixture
def module(monkeypatch):
    def make(name: str, **attrs) -> types.ModuleType:
        mod = types.ModuleType(name)
        for key, value in attrs.items():
            setattr(mod, key, value)
        monkeypatch.setitem(sys.modules, name, mod)
        return mod

    return make


def test_a_module_providing_registry_and_blueprints_loads(module) -> None:
    module("flows_ok", registry={"noop": noop}, blueprints={"one": BLUEPRINT}, dependencies={"db": 1})
    app = load_app("flows_ok")
    assert list(app.blueprints) == ["one"] and app.registry["noop"] is noop
    assert app.dependencies == {"db": 1} and app.evaluator is not None


def test_an_attribute_can_be_an_object_a_dict_or_a_factory(module) -> None:
    parts = {"registry": {"noop": noop}, "blueprints": [BLUEPRINT]}
    module("flows_attr", app=types.SimpleNamespace(**parts), as_dict=parts, factory=lambda: parts)
    for spec in ("flows_attr:app", "flows_attr:as_dict", "flows_attr:factory"):
        assert list(load_app(spec).blueprints) == ["one"], spec


def test_a_missing_module_is_named() -> None:
    with pytest.raises(AppLoadError, match="cannot import module 'no_such_flows'"):
        load_app("no_such_flows:app")


def test_a_missing_attribute_is_named(module) -> None:
    module("flows_noattr")
    with pytest.raises(AppLoadError, match="'flows_noattr' has no attribute 'app'"):
        load_app("flows_noattr:app")


def test_a_missing_registry_or_blueprints_is_named(module) -> None:
    module("flows_noreg", blueprints={"one": BLUEPRINT})
    with pytest.raises(AppLoadError, match="provides no `registry`"):
        load_app("flows_noreg")
    module("flows_nobp", registry={"noop": noop})
    with pytest.raises(AppLoadError, match="provides no `blueprints`"):
        load_app("flows_nobp")


def test_an_invalid_blueprint_names_the_blueprint_and_node(module) -> None:
    module("flows_bad", registry={}, blueprints={"one": BLUEPRINT})
    with pytest.raises(AppLoadError, match="Blueprint 'one'.*noop"):
        load_app("flows_bad")


def test_an_import_that_raises_is_reported(module, monkeypatch, tmp_path) -> None:
    (tmp_path / "flows_boom.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(AppLoadError, match="boom at import"):
        load_app("flows_boom")


def test_a_malformed_spec_is_refused() -> None:
    with pytest.raises(AppLoadError, match="expected 'module' or 'module:attribute'"):
        load_app("a:b:c")
