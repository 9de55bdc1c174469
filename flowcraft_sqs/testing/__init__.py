"""Test utilities that ship with the product, for our tests and for users' own.

- `InMemoryEventLogger` (`event_logger`): an event bus that keeps every workflow event,
  with `find` / `filter` helpers and a printable trace.
- `run_with_trace` (`trace`): run a workflow and print its event trace when it fails.
- `create_stepper` (`stepper`): run a workflow one step at a time, with `prev` and `reset`.
- `faults.FaultProxy`: a loopback HTTP proxy between boto3 and a local AWS-compatible
  server that duplicates sends, injects throttling and drops connections on demand.
- `chaosapp`: a `--app` of diamond workflows whose nodes log every execution, so a test
  can count executions and detect a node committed twice.

Nothing here is imported by the worker unless a test asks for it.
"""

from .event_logger import InMemoryEventLogger
from .stepper import WorkflowStepper, create_stepper
from .trace import run_with_trace, run_with_trace_sync

__all__ = ["InMemoryEventLogger", "WorkflowStepper", "create_stepper", "run_with_trace", "run_with_trace_sync"]
