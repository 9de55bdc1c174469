"""`flowcraft-sqs lint` and `flowcraft-sqs graph`: check and draw an app's blueprints.

    flowcraft-sqs lint --app myflows.worker:app            # every blueprint; exit 1 on errors
    flowcraft-sqs lint --app myflows.worker:app order-flow # just one
    flowcraft-sqs graph order-flow --app myflows.worker:app > order-flow.mmd

Both read the blueprints as the app writes them, without the validation a worker does at
start, so `lint` lists every problem at once and `graph` draws even a broken blueprint.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .app import AppLoadError, load_app_unvalidated
from .errors import EXIT_APP_LOAD, EXIT_FAILURE, EXIT_OK
from .lint import lint_blueprint
from .mermaid import generate_mermaid

_APP_OPTION = click.option("--app", required=True, metavar="MODULE[:ATTR]", envvar="FLOWCRAFT_APP",
                           help="Your workflows: a module (or module:attr) providing `registry` and `blueprints`.")


@click.command("lint")
@_APP_OPTION
@click.argument("blueprint_ids", nargs=-1, metavar="[BLUEPRINT_ID]...")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
def lint_command(app: str, blueprint_ids: tuple[str, ...], strict: bool) -> None:
    """Lint the app's blueprints: print each issue, exit 1 if any is an error (for CI)."""
    registry, blueprints = _load(app)
    chosen = _choose(blueprints, blueprint_ids)
    failed = False
    for blueprint_id, blueprint in chosen.items():
        result = lint_blueprint(blueprint, registry=registry, blueprints=blueprints)
        for issue in result.issues:
            where = f" (node {issue.node_id})" if issue.node_id else ""
            click.echo(f"{blueprint_id}: {issue}{where}")
        failed = failed or not result.is_valid or (strict and bool(result.warnings))
    count = len(chosen)
    click.echo(f"{count} blueprint{'s' if count != 1 else ''} checked: {'FAILED' if failed else 'ok'}",
               err=True)
    sys.exit(EXIT_FAILURE if failed else EXIT_OK)


@click.command("graph")
@click.argument("blueprint_id")
@_APP_OPTION
def graph_command(blueprint_id: str, app: str) -> None:
    """Print BLUEPRINT_ID of the app as a Mermaid flowchart."""
    _, blueprints = _load(app)
    blueprint = _choose(blueprints, (blueprint_id,))[blueprint_id]
    click.echo(generate_mermaid(blueprint), nl=False)


def _load(spec: str) -> tuple[Any, dict[str, Any]]:
    try:
        return load_app_unvalidated(spec)
    except AppLoadError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_APP_LOAD)


def _choose(blueprints: dict[str, Any], wanted: tuple[str, ...]) -> dict[str, Any]:
    missing = [blueprint_id for blueprint_id in wanted if blueprint_id not in blueprints]
    if missing:
        known = ", ".join(sorted(blueprints)) or "none"
        raise click.UsageError(f"no blueprint {', '.join(map(repr, missing))} in the app (it has: {known})")
    return {key: blueprints[key] for key in wanted} if wanted else blueprints


def register(group: click.Group) -> None:
    group.add_command(lint_command)
    group.add_command(graph_command)
