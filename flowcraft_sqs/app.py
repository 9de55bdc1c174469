"""Loading the user's application: `--app module:attr` or `--app module`.

The target provides `registry` (a mapping `uses` -> implementation), `blueprints` (a
mapping id -> blueprint dict, or a list of blueprints), and optionally `dependencies`
(passed to every node), `middleware`, `evaluator` and `event_bus` (told every workflow
event). It may be a module, any object with those attributes, a dict with those keys, or
a callable that returns one of these.

Every failure raises `AppLoadError`, whose message names what is missing; processes exit
with `EXIT_APP_LOAD` on it, and the supervisor halts instead of restarting them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .blueprint import Blueprint, load_blueprints
from .errors import BlueprintError, ConfigError, ExpressionError


class AppLoadError(ConfigError):
    """--app cannot be imported or lacks what a worker needs."""


@dataclass(frozen=True)
class App:
    """What a worker runs: validated blueprints and the implementations they use."""

    spec: str
    registry: Mapping[str, Any]
    blueprints: Mapping[str, Blueprint]
    dependencies: Mapping[str, Any] = field(default_factory=dict)
    middleware: Sequence[Any] = ()
    evaluator: Any = None
    event_bus: Any = None  # an `events.EventBus` the engine reports to, if the app gives one


def load_app(spec: str) -> App:
    """Import `spec` and return its validated App, or raise AppLoadError naming the problem."""
    target = _import_target(spec)
    if callable(target) and not _has_parts(target) and not inspect.ismodule(target):
        try:
            target = target()
        except Exception as exc:
            raise AppLoadError(f"--app {spec}: calling {_name(target)}() failed: {exc!r}") from exc
    registry = _part(target, "registry", spec, required=True)
    raw_blueprints = _part(target, "blueprints", spec, required=True)
    if not isinstance(registry, Mapping):
        raise AppLoadError(f"--app {spec}: `registry` must be a mapping of uses -> implementation, "
                           f"not {type(registry).__name__}")
    if not isinstance(raw_blueprints, (Mapping, list, tuple)):
        raise AppLoadError(f"--app {spec}: `blueprints` must be a mapping of id -> blueprint "
                           f"(or a list), not {type(raw_blueprints).__name__}")
    evaluator = _part(target, "evaluator", spec) or _default_evaluator()
    blueprints = _validated(spec, raw_blueprints, registry, evaluator)
    if not blueprints:
        raise AppLoadError(f"--app {spec}: `blueprints` is empty; a worker needs at least one")
    return App(
        spec=spec,
        registry=dict(registry),
        blueprints=blueprints,
        dependencies=dict(_part(target, "dependencies", spec) or {}),
        middleware=tuple(_part(target, "middleware", spec) or ()),
        evaluator=evaluator,
        event_bus=_part(target, "event_bus", spec),
    )


def load_app_unvalidated(spec: str) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """The app's registry and its blueprints as written, keyed by id, without validating them.

    For tools that report what is wrong with a blueprint (`flowcraft-sqs lint`, `graph`)
    rather than refuse to start.
    """
    target = _import_target(spec)
    if callable(target) and not _has_parts(target) and not inspect.ismodule(target):
        try:
            target = target()
        except Exception as exc:
            raise AppLoadError(f"--app {spec}: calling {_name(target)}() failed: {exc!r}") from exc
    registry = _part(target, "registry", spec, required=True)
    raw = _part(target, "blueprints", spec, required=True)
    if isinstance(raw, Mapping):
        return registry, {str(key): _as_data(value) for key, value in raw.items()}
    blueprints = [_as_data(value) for value in raw]
    return registry, {str(bp.get("id")): bp for bp in blueprints}


def _as_data(blueprint: Any) -> Any:
    return blueprint.to_dict() if isinstance(blueprint, Blueprint) else blueprint


def _import_target(spec: str) -> Any:
    if not spec or spec.count(":") > 1:
        raise AppLoadError(f"--app {spec!r}: expected 'module' or 'module:attribute'")
    module_name, _, attr_path = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        hint = "" if exc.name != module_name.split(".")[0] else (
            " (is it installed, or is its folder on PYTHONPATH / the working directory?)")
        raise AppLoadError(f"--app {spec}: cannot import module '{exc.name}'{hint}") from exc
    except Exception as exc:
        raise AppLoadError(f"--app {spec}: importing '{module_name}' raised {exc!r}") from exc
    for name in filter(None, attr_path.split(".")):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise AppLoadError(f"--app {spec}: '{module_name}' has no attribute '{attr_path}'") from None
    return target


def _has_parts(target: Any) -> bool:
    return _get(target, "registry") is not None or _get(target, "blueprints") is not None


def _get(target: Any, name: str) -> Any:
    if isinstance(target, Mapping):
        return target.get(name)
    return getattr(target, name, None)


def _part(target: Any, name: str, spec: str, required: bool = False) -> Any:
    value = _get(target, name)
    if value is None and required:
        raise AppLoadError(f"--app {spec}: {_name(target)} provides no `{name}`; define `{name}` "
                           f"there (registry: uses -> implementation, blueprints: id -> blueprint)")
    return value


def _validated(spec: str, raw: Any, registry: Mapping[str, Any], evaluator: Any) -> dict[str, Blueprint]:
    try:
        return load_blueprints(raw, registry=registry, evaluator=evaluator)
    except (BlueprintError, ExpressionError) as exc:
        raise AppLoadError(f"--app {spec}: {exc}") from exc


def _default_evaluator() -> Any:
    from .expressions import DefaultEvaluator

    return DefaultEvaluator()


def _name(target: Any) -> str:
    if inspect.ismodule(target):
        return f"module '{target.__name__}'"
    return getattr(target, "__qualname__", None) or type(target).__name__
