"""flowcraft-sqs: run Flowcraft workflows across fleets of machines on AWS SQS and DynamoDB.

The names that need boto3 (`SqsAdapter`, the DynamoDB stores, the reconciler, the client)
are imported lazily, so the workflow core imports without touching AWS libraries.
"""

from __future__ import annotations

from typing import Any

from .analysis import BlueprintAnalysis, analyze_blueprint
from .blueprint import Blueprint, load_blueprint, load_blueprints
from .builder import FlowBuilder, create_flow
from .errors import BlueprintError, FlowcraftError, NodeFailure
from .events import EventBus, FlowcraftEvent
from .lint import LintIssue, LintResult, lint_blueprint
from .mermaid import generate_mermaid, generate_mermaid_for_run
from .runtime import FlowRuntime, TimerScheduler, WorkflowError, WorkflowResult

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
    "EventBus",
    "FlowBuilder",
    "FlowRuntime",
    "FlowcraftError",
    "FlowcraftEvent",
    "LintIssue",
    "LintResult",
    "NodeFailure",
    "TimerScheduler",
    "WorkflowError",
    "WorkflowResult",
    "analyze_blueprint",
    "create_flow",
    "generate_mermaid",
    "generate_mermaid_for_run",
    "lint_blueprint",
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
