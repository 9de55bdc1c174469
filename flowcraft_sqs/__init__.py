"""flowcraft-sqs: run Flowcraft workflows across fleets of machines on AWS SQS and DynamoDB.

The names that need boto3 (`SqsAdapter`, the DynamoDB stores, the reconciler, the client)
are imported lazily, so the workflow core imports without touching AWS libraries.
"""

from __future__ import annotations

from typing import Any

from .analysis import BlueprintAnalysis, analyze_blueprint
from .blueprint import Blueprint, load_blueprint, load_blueprints
from .errors import BlueprintError, FlowcraftError, NodeFailure
from .runtime import FlowRuntime, WorkflowResult

__version__ = "0.1.0"

_LAZY = {
    "SqsAdapter": ("adapter", "SqsAdapter"),
    "DynamoDbContext": ("stores.dynamodb", "DynamoDbContext"),
    "DynamoDbCoordinationStore": ("stores.dynamodb", "DynamoDbCoordinationStore"),
    "create_sqs_reconciler": ("reconciler", "create_sqs_reconciler"),
    "ReconciliationStats": ("reconciler", "ReconciliationStats"),
    "FlowcraftClient": ("client", "FlowcraftClient"),
}

__all__ = [
    "Blueprint",
    "BlueprintAnalysis",
    "BlueprintError",
    "FlowRuntime",
    "FlowcraftError",
    "NodeFailure",
    "WorkflowResult",
    "analyze_blueprint",
    "load_blueprint",
    "load_blueprints",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        module = importlib.import_module(f".{module_name}", __name__)
        return getattr(module, attribute)
    raise AttributeError(f"module 'flowcraft_sqs' has no attribute {name!r}")
