"""Example workflows, runnable with no AWS account and no network.

    flowcraft-worker --procs 2 --app flowcraft_sqs.examples:app

- `moderation`: the seed document's use case "4.content-moderation" (blueprint `400`), with a
  deterministic fake LLM;
- `shapes`: `diamond` (fan-out and an `all` join) and `long` (a node that outlives the
  message's visibility timeout, so its lease is extended).

`shared` is the seed's `./shared` module (`agent_node_registry`, `blueprints`, `config`), and
`worker`, `client` and `reconcile` are the seed's `worker.ts`, `client.ts` and
`reconcile.ts` in Python: `python -m flowcraft_sqs.examples.worker`, and so on.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from . import moderation, shapes

registry: dict[str, Any] = {**moderation.registry, **shapes.registry}

blueprints: dict[str, dict[str, Any]] = {
    moderation.BLUEPRINT_ID: moderation.blueprint,
    shapes.diamond["id"]: shapes.diamond,
    shapes.long["id"]: shapes.long,
}

# Passed to every node as `ctx.dependencies`: swap `fake_llm` for a real model client here.
dependencies: dict[str, Any] = {"llm": moderation.fake_llm}

# The seed's `config`: use case -> the blueprint to start and the run's initial context.
config: dict[str, dict[str, Any]] = {
    "4.content-moderation": {
        "mainWorkflowId": moderation.BLUEPRINT_ID,
        "initialContext": dict(moderation.SEED_INITIAL_CONTEXT),
    },
    "diamond": {"mainWorkflowId": "diamond", "initialContext": {"value": 3}},
    "long": {"mainWorkflowId": "long", "initialContext": {"seconds": shapes.DEFAULT_SLEEP_S}},
}

# What `--app flowcraft_sqs.examples:app` loads.
app = SimpleNamespace(registry=registry, blueprints=blueprints, dependencies=dependencies)

__all__ = ["app", "blueprints", "config", "dependencies", "registry"]
