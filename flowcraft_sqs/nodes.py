"""Running one node: implementation lookup, retries, timeouts, middleware and fallback.

This is workflow logic only: no AWS, no processes, no clock. Time enters through the
injected `sleep` (retry delays) and asyncio's own timers (per-attempt timeouts).

Semantics follow TypeScript Flowcraft (spec §3), with the contract's fixes:

- A node returns None, a dict with optional `output` / `action` (other keys, `error`
  included, are ignored: returning `{"error": ...}` is a success, as TS), or a `NodeResult`.
  Any other value fails the node with a message saying what to return.
- Function nodes: any callable, sync or async, taking one `NodeContext`. Class nodes: a class
  with an `exec` method, built as `Impl(params, node_id)` (or `Impl(params)`, or `Impl()`,
  whichever its signature accepts), run as prep -> exec (retried) -> fallback method (if
  every exec attempt failed) -> post, with `recover` in a finally whenever anything failed.
- `config.maxRetries` is the TOTAL number of attempts (default 1); 0 or less means the node
  is never called and fails (non-fatally, so a fallback node may still run).
- FIX: `config.retryDelay` (ms, default 0) is awaited between attempts through `sleep`.
- FIX: `config.timeout` (ms) bounds each attempt. An async attempt is cancelled. A sync
  attempt runs in a worker thread (`asyncio.to_thread`) so it can be abandoned; a thread
  cannot be killed, so it may keep running until its code returns. Its late context
  writes are refused (the view is closed), and the distributed executor replaces a
  process whose abandoned threads pile up. An async node that blocks without awaiting, or
  that swallows cancellation, cannot be interrupted from inside the process either.
- A fatal error (missing implementation, cancellation) skips retries and every fallback.
- Middleware (spec §3.4), each hook sync or async, snake_case or TS camelCase names:
  `around1> around2> before1 before2 [node with retries] after1 after2 around2< around1<`.
  Hooks get the run's context view (as TS passes `nodeContext.context`), not the NodeContext.
- Fallback node: the distributed TS variant (§3.5): run inline after the primary failed
  non-fatally, its result stands in for the primary's. One level only (a fallback's own
  fallback is not followed), as TS.
- FIX: failure reasons keep the original message: `Node 'X' failed: boom`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import NodeFailure
from .jsvalues import UNDEFINED, truthy
from .node_context import NodeContext, RunContextView

__all__ = [
    "BaseNode",
    "InvalidNodeResult",
    "NodeOutcome",
    "NodeResult",
    "execute_node",
    "is_cancelled",
    "normalize_result",
]

Sleep = Callable[[float], Awaitable[None]]
#: Runs a synchronous callable off the event loop and awaits its result (a thread pool).
Offload = Callable[[Callable[[], Any]], Awaitable[Any]]
CANCELLED_MESSAGE = "Workflow cancelled"
_LOG = logging.getLogger(__name__)


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeResult:
    """What a node produced: `output` (UNDEFINED when none) and `action` (None when none)."""

    output: Any = UNDEFINED
    action: str | None = None

    def __post_init__(self) -> None:
        action = self.action
        if action is UNDEFINED or (isinstance(action, str) and action == ""):
            object.__setattr__(self, "action", None)
        elif action is not None and not isinstance(action, str):
            raise TypeError(f"an action must be a string, not {type(action).__name__} ({action!r})")


class InvalidNodeResult(TypeError):
    """A node returned something that is not a result; `detail` omits the node prefix."""

    def __init__(self, node_id: str, detail: str) -> None:
        self.node_id = node_id
        self.detail = detail
        super().__init__(f"Node '{node_id}' {detail}")


def normalize_result(value: Any, node_id: str) -> NodeResult:
    """Turn what a node returned into a NodeResult, or raise InvalidNodeResult.

    None -> no output, no action. A mapping -> its `output` / `action` (others ignored).
    A NodeResult -> itself. Anything else is refused: TS would silently drop it.
    """
    if value is None or value is UNDEFINED:
        return NodeResult()
    if isinstance(value, NodeResult):
        return value
    if isinstance(value, Mapping):
        action = value.get("action")
        if action is not None and action is not UNDEFINED and not isinstance(action, str):
            raise InvalidNodeResult(
                node_id,
                f"returned action {_short(action)} ({type(action).__name__}); "
                "an action must be a string",
            )
        return NodeResult(
            output=value.get("output", UNDEFINED),
            action=action if isinstance(action, str) else None,
        )
    raise InvalidNodeResult(
        node_id,
        f"returned {type(value).__name__} {_short(value)}; return "
        "{'output': ..., 'action': ...}, a NodeResult, or None",
    )


@dataclass(frozen=True)
class NodeOutcome:
    """Everything the protocol needs from one node execution (no timings: no clock here).

    `attempts` counts the primary's calls (class nodes: exec calls); `fallback_attempts`
    the fallback node's. `context_writes` / `context_deletes` merge every view used, the
    fallback's last; they are reported on failure too, but only a success commits them.
    """

    result: NodeResult | None
    error: NodeFailure | None
    attempts: int
    fallback_executed: bool = False
    fallback_node_id: str | None = None
    catch_error: dict[str, Any] | None = None
    context_writes: dict[str, Any] = field(default_factory=dict)
    context_deletes: frozenset[str] = frozenset()
    fallback_attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


# -- class nodes ---------------------------------------------------------------------------


class BaseNode:
    """Base for class nodes; override `exec` and, when needed, the other phases.

    Every method may be sync or async. `exec` is retried; the others run once.
    """

    def __init__(self, params: Mapping[str, Any] | None = None, node_id: str | None = None) -> None:
        self.params: dict[str, Any] = dict(params or {})
        self.node_id = node_id

    def prep(self, ctx: NodeContext) -> Any:
        return ctx.input

    def exec(self, prep_result: Any, ctx: NodeContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.exec is not implemented")

    def post(self, exec_result: Any, ctx: NodeContext) -> Any:
        return exec_result

    def fallback(self, error: BaseException, ctx: NodeContext) -> Any:
        raise error

    def recover(self, error: BaseException, ctx: NodeContext) -> None:
        return None


def _default_prep(ctx: NodeContext) -> Any:
    return ctx.input


def _default_post(exec_result: Any, ctx: NodeContext) -> Any:
    return exec_result


def _default_fallback(error: BaseException, ctx: NodeContext) -> Any:
    raise error


def _default_recover(error: BaseException, ctx: NodeContext) -> None:
    return None


def _construct(cls: type, params: dict[str, Any], node_id: str) -> Any:
    """`cls(params, node_id)`, else `cls(params)`, else `cls()`: whichever the signature takes."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return cls(params, node_id)
    for args in ((params, node_id), (params,), ()):
        try:
            signature.bind(*args)
        except TypeError:
            continue
        return cls(*args)
    raise TypeError(
        f"cannot construct {cls.__name__}: its __init__ must accept (params, node_id), "
        "(params) or no arguments"
    )


# -- helpers -------------------------------------------------------------------------------


def is_cancelled(signal: Any) -> bool:
    """True when a cancellation token is set: an Event (`is_set()`), or an `aborted` /
    `cancelled` flag or method (TS AbortSignal shape). None is never cancelled."""
    if signal is None:
        return False
    for name in ("is_set", "aborted", "cancelled"):
        probe = getattr(signal, name, None)
        if callable(probe):
            return bool(probe())
        if probe is not None:
            return bool(probe)
    return False


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    value = fn(*args)
    if inspect.isawaitable(value):
        value = await value
    return value


def _is_async_callable(fn: Any) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ms(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _message(exc: BaseException) -> tuple[str, bool]:
    """The original message of an exception, and whether it is fatal."""
    if isinstance(exc, InvalidNodeResult):
        return exc.detail, False
    if isinstance(exc, NodeFailure):
        return exc.original_message, exc.fatal
    return (str(exc) or type(exc).__name__), False


def node_failure(node_id: str, exc: BaseException) -> NodeFailure:
    if isinstance(exc, NodeFailure) and exc.node_id == node_id:
        return exc
    message, fatal = _message(exc)
    failure = NodeFailure(node_id, message, fatal=fatal)
    failure.__cause__ = exc
    return failure


def _is_fatal(exc: BaseException) -> bool:
    return isinstance(exc, NodeFailure) and exc.fatal


def _log(logger: Any, level: str, message: str) -> None:
    fn = getattr(logger, level, None) or getattr(logger, "warn", None)
    if callable(fn):
        with contextlib.suppress(Exception):  # a broken logger must not fail a node
            fn(message)


def _hook(middleware: Any, snake: str, camel: str) -> Callable[..., Any] | None:
    if isinstance(middleware, Mapping):
        fn = middleware.get(snake) or middleware.get(camel)
    else:
        fn = getattr(middleware, snake, None) or getattr(middleware, camel, None)
    return fn if callable(fn) else None


def _number(value: Any, default: float | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return float(value)


@dataclass(frozen=True)
class _Config:
    max_retries: int
    max_retries_raw: Any
    retry_delay_ms: float
    timeout_ms: float | None


def _config(node: Mapping[str, Any]) -> _Config:
    config = node.get("config") or {}
    if not isinstance(config, Mapping):
        config = {}
    raw = config.get("maxRetries")
    max_retries = _number(raw, 1.0)
    delay = _number(config.get("retryDelay"), 0.0) or 0.0
    timeout = _number(config.get("timeout"), None)
    return _Config(
        max_retries=int(max_retries if max_retries is not None else 1),
        max_retries_raw=raw,
        retry_delay_ms=max(delay, 0.0),
        timeout_ms=timeout if timeout is not None and timeout > 0 else None,
    )


@dataclass(frozen=True)
class _Settled:
    result: NodeResult | None
    failure: NodeFailure | None


# -- one node through middleware -----------------------------------------------------------


class _Run:
    """One node (the primary or its fallback) executed through the middleware chain."""

    def __init__(
        self,
        node: Mapping[str, Any],
        registry: Mapping[str, Any],
        ctx: NodeContext,
        middleware: Sequence[Any],
        sleep: Sleep,
        logger: Any,
        offload: Offload | None = None,
    ) -> None:
        self.node = node
        self.node_id = str(node.get("id") or ctx.node_id)
        self.registry = registry
        self.ctx = ctx
        self.middleware = middleware
        self.sleep = sleep
        self.offload = offload
        self.logger = logger
        self.config = _config(node)
        self.attempts = 0
        self.kind = ""
        self.impl: Any = None

    async def settle(self) -> _Settled:
        try:
            kind, impl = self._resolve()
        except NodeFailure as failure:  # TS: thrown before the executor, so no middleware
            return _Settled(None, failure)
        self.kind, self.impl = kind, impl
        chain: Callable[[], Awaitable[_Settled]] = self._core
        arounds = [h for m in self.middleware if (h := _hook(m, "around_node", "aroundNode"))]
        for hook in reversed(arounds):
            chain = self._wrap(hook, chain)
        return await chain()

    def _resolve(self) -> tuple[str, Any]:
        uses = self.node.get("uses")
        impl = self.registry.get(uses) if isinstance(uses, str) else None
        if impl is None:
            raise NodeFailure(self.node_id, f"Implementation for '{uses}' not found.", fatal=True)
        if inspect.isclass(impl):
            if callable(getattr(impl, "exec", None)):
                return "class", impl
            raise NodeFailure(
                self.node_id,
                f"Implementation for '{uses}' is a class without an exec method.",
                fatal=True,
            )
        if not inspect.isroutine(impl) and callable(getattr(impl, "exec", None)):
            raise NodeFailure(
                self.node_id,
                f"Implementation for '{uses}' is a {type(impl).__name__} instance; "
                "register the class itself.",
                fatal=True,
            )
        if callable(impl):
            return "function", impl
        raise NodeFailure(
            self.node_id,
            f"Implementation for '{uses}' is not callable ({type(impl).__name__}).",
            fatal=True,
        )

    # -- middleware ----------------------------------------------------------------

    async def _core(self) -> _Settled:
        view = self.ctx.context
        result: NodeResult | None = None
        error: BaseException | None = None
        try:
            for hook in self._hooks("before_node", "beforeNode"):
                await _call(hook, view, self.node_id)
            result = await self._strategy()
            settled = _Settled(result, None)
        except Exception as exc:
            error = exc
            settled = _Settled(None, node_failure(self.node_id, exc))
        try:
            for hook in self._hooks("after_node", "afterNode"):
                await _call(hook, view, self.node_id, result, error)
        except Exception as exc:
            if settled.failure is None:
                settled = _Settled(None, node_failure(self.node_id, exc))
            else:
                _log(
                    self.logger,
                    "warning",
                    f"after_node hook of node '{self.node_id}' failed: {exc!r}",
                )
        return settled

    def _wrap(
        self, hook: Callable[..., Any], inner: Callable[[], Awaitable[_Settled]]
    ) -> Callable[[], Awaitable[_Settled]]:
        async def wrapped() -> _Settled:
            captured: list[_Settled] = []

            async def next_() -> NodeResult | None:
                settled = await inner()
                captured.append(settled)
                if settled.failure is not None:
                    raise settled.failure
                return settled.result

            try:
                value = await _call(hook, self.ctx.context, self.node_id, next_)
            except Exception as exc:
                if captured and captured[-1].failure is not None:
                    return captured[-1]  # the core's failure stands
                return _Settled(None, node_failure(self.node_id, exc))
            if captured:
                return captured[-1]  # TS: once next() ran, its outcome is the result
            if truthy(value):
                try:
                    return _Settled(normalize_result(value, self.node_id), None)
                except InvalidNodeResult as exc:
                    return _Settled(None, node_failure(self.node_id, exc))
            return _Settled(
                None,
                NodeFailure(
                    self.node_id,
                    "middleware around_node did not call next() and returned no result",
                ),
            )

        return wrapped

    def _hooks(self, snake: str, camel: str) -> list[Callable[..., Any]]:
        return [h for m in self.middleware if (h := _hook(m, snake, camel))]

    # -- strategies ----------------------------------------------------------------

    async def _strategy(self) -> NodeResult:
        if self.config.max_retries <= 0:
            raise NodeFailure(
                self.node_id,
                f"config.maxRetries is {self.config.max_retries_raw!r}, so the node was never "
                "attempted (maxRetries counts total attempts; use 1 or more)",
            )
        if self.kind == "class":
            return await self._class_node()
        impl, ctx = self.impl, self.ctx
        value = await self._with_retries(lambda: impl(ctx), _is_async_callable(impl))
        return normalize_result(value, self.node_id)

    async def _class_node(self) -> NodeResult:
        ctx = self.ctx
        instance = _construct(self.impl, ctx.params, self.node_id)
        prep = getattr(instance, "prep", None) or _default_prep
        exec_ = instance.exec
        fallback = getattr(instance, "fallback", None) or _default_fallback
        post = getattr(instance, "post", None) or _default_post
        recover = getattr(instance, "recover", None) or _default_recover
        last_error: BaseException | None = None
        try:
            self._check_cancelled()
            prep_result = await _call(prep, ctx)
            exec_result: Any = None
            exec_error: BaseException | None = None
            try:
                exec_result = await self._with_retries(
                    lambda: exec_(prep_result, ctx), _is_async_callable(exec_)
                )
            except Exception as exc:
                if _is_fatal(exc):
                    raise
                exec_error = last_error = exc
            if exec_error is not None:
                self._check_cancelled()
                exec_result = await _call(fallback, exec_error, ctx)
            self._check_cancelled()
            return normalize_result(await _call(post, exec_result, ctx), self.node_id)
        except Exception as exc:
            last_error = exc
            raise
        finally:
            if last_error is not None:
                try:
                    await _call(recover, last_error, ctx)
                except Exception as exc:
                    _log(
                        self.logger,
                        "warning",
                        f"recover of node '{self.node_id}' failed: {exc!r} "
                        f"(original error: {_message(last_error)[0]})",
                    )

    # -- retries and timeouts --------------------------------------------------------

    def _check_cancelled(self) -> None:
        if is_cancelled(self.ctx.signal):
            raise NodeFailure(self.node_id, CANCELLED_MESSAGE, fatal=True)

    async def _with_retries(self, call: Callable[[], Any], is_async: bool) -> Any:
        total = self.config.max_retries
        last: Exception | None = None
        for attempt in range(1, total + 1):
            self._check_cancelled()
            self.ctx.attempt = attempt
            self.attempts = attempt
            try:
                return await self._attempt(call, is_async, attempt, total)
            except Exception as exc:
                last = exc
                if _is_fatal(exc) or attempt == total:
                    raise
                delay = self.config.retry_delay_ms
                _log(
                    self.logger,
                    "warning",
                    f"Node '{self.node_id}' attempt {attempt} of {total} failed: "
                    f"{_message(exc)[0]}; retrying in {_ms(delay)} ms",
                )
                if delay > 0:
                    await self.sleep(delay / 1000.0)
        assert last is not None  # the loop either returned or raised
        raise last

    async def _off_loop(self, call: Callable[[], Any]) -> Any:
        """A sync attempt in a worker thread, so other nodes run meanwhile and a timeout
        can abandon it; an awaitable it returns is awaited here, on the loop."""
        value = await (self.offload(call) if self.offload is not None else asyncio.to_thread(call))
        if inspect.isawaitable(value):
            value = await value
        return value

    async def _attempt(
        self, call: Callable[[], Any], is_async: bool, attempt: int, total: int
    ) -> Any:
        timeout_ms = self.config.timeout_ms
        if timeout_ms is None and (is_async or self.offload is None):
            return await _call(call)
        if timeout_ms is None:
            return await self._off_loop(call)
        scope = asyncio.timeout(timeout_ms / 1000.0)
        try:
            async with scope:
                if is_async:
                    return await _call(call)
                return await self._off_loop(call)
        except TimeoutError:
            if scope.expired():
                raise NodeFailure(
                    self.node_id,
                    f"timed out after {_ms(timeout_ms)} ms (attempt {attempt} of {total})",
                ) from None
            raise


# -- the entry point -----------------------------------------------------------------------


def _default_fallback_context(
    primary: NodeContext, fallback_node: Mapping[str, Any]
) -> NodeContext:
    """The fallback's context when the caller gives no factory: the job's snapshot, no input."""
    return NodeContext(
        context=RunContextView(primary.context.snapshot),
        input=UNDEFINED,
        params=dict(fallback_node.get("params") or {}),
        dependencies=primary.dependencies,
        signal=primary.signal,
        node_id=str(fallback_node.get("id")),
        run_id=primary.run_id,
        blueprint_id=primary.blueprint_id,
    )


def _merge_changes(views: Sequence[RunContextView]) -> tuple[dict[str, Any], frozenset[str]]:
    writes: dict[str, Any] = {}
    deletes: set[str] = set()
    seen: list[RunContextView] = []
    for view in views:
        if any(view is s for s in seen):
            continue
        seen.append(view)
        for key in view.deletes():
            writes.pop(key, None)
            deletes.add(key)
        for key, value in view.writes().items():
            writes[key] = value
            deletes.discard(key)
    return writes, frozenset(deletes)


async def execute_node(
    *,
    node: Mapping[str, Any],
    registry: Mapping[str, Any],
    context: NodeContext,
    middleware: Sequence[Any] = (),
    fallback_node: Mapping[str, Any] | None = None,
    make_fallback_context: Callable[[Mapping[str, Any]], NodeContext] | None = None,
    sleep: Sleep = asyncio.sleep,
    logger: Any = None,
    offload: Offload | None = None,
) -> NodeOutcome:
    """Execute the blueprint node `node` with `context`; never raises for a node's failure.

    `fallback_node` is the definition named by the node's `config.fallback`; it runs inline
    when the primary failed non-fatally, with the context `make_fallback_context(fallback_node)`
    returns (default: the primary's snapshot, input UNDEFINED). Its success stands in for the
    primary (`fallback_executed=True`, `catch_error={"message", "nodeId", "blueprintId"}`);
    its failure is the node's failure.

    `offload` runs each sync attempt off the loop (a bounded thread pool), so a blocking
    node does not hold up the nodes running beside it; without it, a sync attempt runs
    inline unless it has a timeout (then in `asyncio.to_thread`, to be abandonable).
    """
    log = logger if logger is not None else _LOG
    primary = _Run(node, registry, context, middleware, sleep, log, offload)
    settled = await primary.settle()
    views = [context.context]
    result, error = settled.result, settled.failure
    fallback_executed = False
    fallback_node_id: str | None = None
    catch_error: dict[str, Any] | None = None
    fallback_attempts = 0
    if (
        error is not None
        and not error.fatal
        and fallback_node is not None
        and not is_cancelled(context.signal)
    ):
        fallback_node_id = str(fallback_node.get("id"))
        _log(
            log,
            "warning",
            f"Node '{primary.node_id}' failed ({error.original_message}); "
            f"running fallback '{fallback_node_id}'",
        )
        fb_context = (
            make_fallback_context(fallback_node)
            if make_fallback_context is not None
            else _default_fallback_context(context, fallback_node)
        )
        views.append(fb_context.context)
        fb_run = _Run(fallback_node, registry, fb_context, middleware, sleep, log, offload)
        fb_settled = await fb_run.settle()
        fallback_attempts = fb_run.attempts
        if fb_settled.failure is None:
            catch_error = {
                "message": error.original_message,
                "nodeId": primary.node_id,
                "blueprintId": context.blueprint_id,
            }
            result, error, fallback_executed = fb_settled.result, None, True
        else:
            error = fb_settled.failure
    for view in views:
        view.close()
    writes, deletes = _merge_changes(views)
    return NodeOutcome(
        result=result if error is None else None,
        error=error,
        attempts=primary.attempts,
        fallback_executed=fallback_executed,
        fallback_node_id=fallback_node_id,
        catch_error=catch_error,
        context_writes=writes,
        context_deletes=deletes,
        fallback_attempts=fallback_attempts,
    )
