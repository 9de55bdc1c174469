"""Exception hierarchy and the process exit codes.

Every error says what is at fault by name (blueprint, node, edge, message, value),
so an operator can act on the log line alone.
"""

from __future__ import annotations


class FlowcraftError(Exception):
    """Base of every error this package raises on purpose.

    It carries, where known, the node, blueprint and run (`execution_id`) at fault, and
    whether the failure is fatal (no retry or fallback can help), as TS's FlowcraftError.
    `cause` is the exception this one wraps (also set as `__cause__`).
    """

    def __init__(
        self,
        *args: object,
        node_id: str | None = None,
        blueprint_id: str | None = None,
        execution_id: str | None = None,
        is_fatal: bool = False,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(*args)
        self.node_id = node_id
        self.blueprint_id = blueprint_id
        self.execution_id = execution_id
        self.is_fatal = is_fatal
        if cause is not None:
            self.__cause__ = cause

    @property
    def cause(self) -> BaseException | None:
        return self.__cause__

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take other constructor arguments than their `args`; rebuilding from
        # args and attributes lets every error cross a process boundary intact.
        return (_restore_error, (type(self), self.args, dict(self.__dict__)))


def _restore_error(cls: type[FlowcraftError], args: tuple[object, ...], state: dict[str, object]) -> FlowcraftError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class BlueprintError(FlowcraftError):
    """A blueprint is malformed; the message names the blueprint and the node or edge."""

    def __init__(self, blueprint_id: str, problems: list[str]) -> None:
        self.problems = list(problems)
        joined = "; ".join(self.problems)
        super().__init__(f"Blueprint '{blueprint_id}' is invalid: {joined}", blueprint_id=blueprint_id)


class ExpressionError(FlowcraftError):
    """An expression cannot be parsed or is outside the safe subset."""


class NodeFailure(FlowcraftError):
    """A node failed after its retries and fallback. `reason` is the run's failure reason."""

    def __init__(self, node_id: str, message: str, *, fatal: bool = False) -> None:
        self.original_message = message
        self.fatal = fatal
        super().__init__(f"Node '{node_id}' failed: {message}", node_id=node_id, is_fatal=fatal)


class ValueNotStorable(FlowcraftError):
    """A value cannot be stored in DynamoDB (NaN, infinity, bytes, sets, objects, too large)."""


class ContextTooLarge(FlowcraftError):
    """A run's state would pass DynamoDB's 400 KB item limit."""

    def __init__(self, run_id: str, size_bytes: int, limit_bytes: int) -> None:
        self.run_id = run_id
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(
            f"Run '{run_id}' context would be {size_bytes} bytes, over the "
            f"{limit_bytes}-byte DynamoDB item limit",
            execution_id=run_id,
        )


class MalformedMessage(FlowcraftError):
    """A queue message is not a valid job; it can never succeed."""


class TransientError(FlowcraftError):
    """Throttling, a dropped connection or an endpoint that is down: retry with backoff."""


class ConfigError(FlowcraftError):
    """A setting is invalid; the message says how to fix it."""


class RunStateError(FlowcraftError):
    """A client call does not fit the run's state (resume a run that is not awaiting, ...)."""


# Process exit codes: a protocol between children, the supervisor and systemd.
EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected crash; the supervisor restarts the child
EXIT_CONFIG = 78  # EX_CONFIG: bad settings; restarting cannot help, so the supervisor halts
EXIT_BOOT = 3  # a child could not start (app import failed, AWS unreachable at boot): halt
EXIT_APP_LOAD = 4  # --app could not be imported or lacks registry/blueprints: halt
