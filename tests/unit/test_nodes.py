"""Running one node: results, class lifecycle, retries, timeouts, middleware, fallback.

Each test names the behaviour it pins; TS means "as TypeScript Flowcraft", FIX means the
contract's deliberate deviation from it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from flowcraft_sqs.errors import NodeFailure
from flowcraft_sqs.jsvalues import UNDEFINED
from flowcraft_sqs.node_context import NodeContext, RunContextView
from flowcraft_sqs.nodes import BaseNode, NodeResult, execute_node, normalize_result


def node_def(node_id: str = "A", uses: str = "impl", **config: Any) -> dict[str, Any]:
    return {"id": node_id, "uses": uses, "params": {"p": 1}, "config": config}


def make_ctx(
    node_id: str = "A", snapshot: dict | None = None, signal: Any = None, input: Any = UNDEFINED
) -> NodeContext:
    return NodeContext(
        context=RunContextView(snapshot or {}),
        input=input,
        params={"p": 1},
        dependencies={},
        signal=signal,
        node_id=node_id,
        run_id="run1",
        blueprint_id="bp",
    )


class FakeSleep:
    def __init__(self) -> None:
        self.requested: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)


def execute(impl: Any, node: dict | None = None, ctx: NodeContext | None = None, **kw: Any):
    node = node or node_def()
    kw.setdefault("sleep", FakeSleep())
    registry = {node["uses"]: impl, **kw.pop("extra_registry", {})}
    return asyncio.run(
        execute_node(node=node, registry=registry, context=ctx or make_ctx(node["id"]), **kw)
    )


class Flaky:
    """A function node that fails `failures` times, then returns `result`."""

    def __init__(self, failures: int, result: Any = None, message: str = "boom") -> None:
        self.failures = failures
        self.result = result
        self.message = message
        self.calls: list[int] = []

    def __call__(self, ctx: NodeContext) -> Any:
        self.calls.append(ctx.attempt)
        if len(self.calls) <= self.failures:
            raise RuntimeError(self.message)
        return self.result


# -- results -------------------------------------------------------------------------------


def test_a_sync_function_node_returns_its_output_and_action():
    outcome = execute(
        lambda ctx: {"output": ctx.input * 2, "action": "big"}, ctx=make_ctx(input=21)
    )
    assert outcome.ok
    assert outcome.result == NodeResult(output=42, action="big")
    assert outcome.attempts == 1


def test_an_async_function_node_is_awaited():
    async def impl(ctx):
        await asyncio.sleep(0)
        value = await ctx.context.get("userId")
        return {"output": f"user {value}"}

    outcome = execute(impl, ctx=make_ctx(snapshot={"userId": 7}))
    assert outcome.result == NodeResult(output="user 7")


def test_a_node_returning_none_succeeds_with_no_output_and_no_action():
    outcome = execute(lambda ctx: None)
    assert outcome.ok
    assert outcome.result.output is UNDEFINED
    assert outcome.result.action is None


def test_returning_error_in_the_result_still_counts_as_success_as_ts():
    outcome = execute(lambda ctx: {"output": 1, "error": "ignored", "extra": True})
    assert outcome.ok
    assert outcome.result == NodeResult(output=1)


def test_an_empty_action_means_no_action():
    assert execute(lambda ctx: {"action": ""}).result.action is None


def test_a_node_may_return_a_node_result():
    assert execute(lambda ctx: NodeResult(output=[1], action="a")).result == NodeResult([1], "a")


def test_a_bare_return_value_fails_the_node_saying_what_to_return():
    outcome = execute(lambda ctx: 42)
    assert not outcome.ok
    assert str(outcome.error).startswith("Node 'A' failed: returned int 42; return {'output': ...")


def test_a_non_string_action_fails_the_node():
    outcome = execute(lambda ctx: {"action": 3})
    assert (
        str(outcome.error) == "Node 'A' failed: returned action 3 (int); an action must be a string"
    )


def test_normalize_result_accepts_none_mappings_and_results():
    assert normalize_result(None, "A") == NodeResult()
    assert normalize_result({"output": None}, "A") == NodeResult(output=None)
    with pytest.raises(TypeError, match="Node 'A' returned str"):
        normalize_result("text", "A")


# -- class nodes ---------------------------------------------------------------------------


def traced_class(trace: list[str], exec_fails: bool = True, post_fails: bool = False):
    class Traced(BaseNode):
        def prep(self, ctx):
            trace.append("prep")
            return "prepared"

        def exec(self, prep_result, ctx):
            trace.append("exec")
            if exec_fails:
                raise ValueError("exec broke")
            return {"output": prep_result}

        def fallback(self, error, ctx):
            trace.append("fallback")
            return {"output": f"rescued from {error}"}

        def post(self, exec_result, ctx):
            trace.append("post")
            if post_fails:
                raise RuntimeError("post broke")
            return exec_result

        def recover(self, error, ctx):
            trace.append(f"recover({error})")

    return Traced


def test_class_node_lifecycle_matches_the_verified_ts_trace():
    trace: list[str] = []
    outcome = execute(traced_class(trace), node=node_def(maxRetries=3))
    assert trace == ["prep", "exec", "exec", "exec", "fallback", "post", "recover(exec broke)"]
    assert outcome.ok
    assert outcome.result.output == "rescued from exec broke"
    assert outcome.attempts == 3


def test_a_class_node_that_succeeds_runs_prep_exec_post_without_fallback_or_recover():
    trace: list[str] = []
    outcome = execute(traced_class(trace, exec_fails=False))
    assert trace == ["prep", "exec", "post"]
    assert outcome.result.output == "prepared"


def test_recover_gets_the_post_error_and_the_node_fails():
    trace: list[str] = []
    outcome = execute(traced_class(trace, exec_fails=False, post_fails=True))
    assert trace == ["prep", "exec", "post", "recover(post broke)"]
    assert str(outcome.error) == "Node 'A' failed: post broke"


def test_the_default_class_fallback_rethrows_so_the_node_fails_with_the_exec_error():
    recovered: list[str] = []

    class Broken(BaseNode):
        def exec(self, prep_result, ctx):
            raise KeyError("missing")

        def recover(self, error, ctx):
            recovered.append(repr(error))

    outcome = execute(Broken, node=node_def(maxRetries=2))
    assert str(outcome.error) == "Node 'A' failed: 'missing'"
    assert recovered == ["KeyError('missing')"]
    assert outcome.attempts == 2


def test_an_error_in_recover_is_only_logged():
    class BadRecover(BaseNode):
        def exec(self, prep_result, ctx):
            raise ValueError("exec broke")

        def fallback(self, error, ctx):
            return {"output": "ok"}

        def recover(self, error, ctx):
            raise RuntimeError("recover broke")

    outcome = execute(BadRecover)
    assert outcome.ok and outcome.result.output == "ok"


def test_a_class_node_is_built_with_params_and_node_id_and_prep_defaults_to_the_input():
    seen: dict[str, Any] = {}

    class Greeter(BaseNode):
        async def exec(self, prep_result, ctx):
            seen.update(params=self.params, node_id=self.node_id, prep=prep_result)
            return {"output": "hi"}

    outcome = execute(Greeter, ctx=make_ctx(input="in"))
    assert outcome.result == NodeResult(output="hi")
    assert seen == {"params": {"p": 1}, "node_id": "A", "prep": "in"}


def test_a_class_whose_init_takes_no_arguments_is_built_without_them():
    class Plain:
        def __init__(self):
            self.made = True

        async def exec(self, prep_result, ctx):
            return {"output": self.made}

    assert execute(Plain).result.output is True


def test_async_class_methods_are_awaited():
    class AllAsync(BaseNode):
        async def prep(self, ctx):
            return 1

        async def exec(self, prep_result, ctx):
            return prep_result + 1

        async def post(self, exec_result, ctx):
            return {"output": exec_result + 1}

    assert execute(AllAsync).result.output == 3


# -- retries -------------------------------------------------------------------------------


def test_a_node_is_retried_until_it_succeeds_within_max_retries():
    impl = Flaky(failures=2, result={"output": "third time"})
    outcome = execute(impl, node=node_def(maxRetries=3))
    assert outcome.ok and outcome.result.output == "third time"
    assert impl.calls == [1, 2, 3]
    assert outcome.attempts == 3


def test_max_retries_counts_total_attempts_and_the_last_error_is_the_reason():
    impl = Flaky(failures=99)
    outcome = execute(impl, node=node_def(maxRetries=3))
    assert impl.calls == [1, 2, 3]
    assert outcome.attempts == 3
    assert str(outcome.error) == "Node 'A' failed: boom"


def test_max_retries_defaults_to_a_single_attempt():
    impl = Flaky(failures=99)
    outcome = execute(impl)
    assert impl.calls == [1]
    assert outcome.attempts == 1


@pytest.mark.parametrize("max_retries", [0, -1])
def test_max_retries_zero_or_negative_never_calls_the_node_and_fails(max_retries):
    impl = Flaky(failures=0)
    outcome = execute(impl, node=node_def(maxRetries=max_retries))
    assert impl.calls == []
    assert outcome.attempts == 0
    assert not outcome.ok and not outcome.error.fatal
    assert f"config.maxRetries is {max_retries}" in str(outcome.error)


def test_max_retries_zero_never_builds_a_class_node():
    built: list[bool] = []

    class Never(BaseNode):
        def __init__(self, params, node_id):
            built.append(True)

        def exec(self, prep_result, ctx):
            return None

    assert not execute(Never, node=node_def(maxRetries=0)).ok
    assert built == []


def test_retry_delay_is_awaited_between_attempts_but_not_after_the_last_fix():
    sleep = FakeSleep()
    execute(Flaky(failures=99), node=node_def(maxRetries=3, retryDelay=250), sleep=sleep)
    assert sleep.requested == [0.25, 0.25]


def test_no_delay_is_requested_when_retry_delay_is_zero_or_absent():
    sleep = FakeSleep()
    execute(Flaky(failures=99), node=node_def(maxRetries=3), sleep=sleep)
    assert sleep.requested == []


# -- timeouts ------------------------------------------------------------------------------


def test_an_async_node_past_its_timeout_fails_that_attempt_fix():
    started: list[int] = []

    async def slow(ctx):
        started.append(ctx.attempt)
        await asyncio.sleep(10)

    outcome = execute(slow, node=node_def(timeout=50, maxRetries=2))
    assert started == [1, 2]
    assert str(outcome.error) == "Node 'A' failed: timed out after 50 ms (attempt 2 of 2)"


def test_a_sync_node_past_its_timeout_fails_even_though_its_thread_keeps_running_fix():
    release, finished = threading.Event(), threading.Event()
    late_write_errors: list[Exception] = []

    def stuck(ctx):
        release.wait(5)
        try:
            ctx.context.set_sync("late", 1)
        except RuntimeError as exc:
            late_write_errors.append(exc)
        finished.set()

    async def scenario():
        ctx = make_ctx()
        outcome = await execute_node(
            node=node_def(timeout=50), registry={"impl": stuck}, context=ctx, sleep=FakeSleep()
        )
        release.set()  # let the abandoned thread end so the loop can shut down promptly
        await asyncio.to_thread(finished.wait, 5)
        return outcome

    outcome = asyncio.run(scenario())
    assert str(outcome.error) == "Node 'A' failed: timed out after 50 ms (attempt 1 of 1)"
    assert outcome.context_writes == {}
    assert len(late_write_errors) == 1


def test_a_timeout_raised_by_the_node_itself_is_not_reported_as_ours():
    async def own_timeout(ctx):
        raise TimeoutError("upstream took too long")

    outcome = execute(own_timeout, node=node_def(timeout=5000))
    assert str(outcome.error) == "Node 'A' failed: upstream took too long"


def test_a_fast_node_under_a_timeout_succeeds_sync_or_async():
    async def quick(ctx):
        return {"output": "async"}

    assert execute(quick, node=node_def(timeout=1000)).result.output == "async"
    assert (
        execute(lambda ctx: {"output": "sync"}, node=node_def(timeout=1000)).result.output == "sync"
    )


# -- fatal errors and cancellation ---------------------------------------------------------


def test_a_missing_implementation_is_fatal_with_no_retry_no_fallback_and_no_middleware():
    calls: list[str] = []
    mw = {"before_node": lambda view, node_id: calls.append("before")}
    fallback = Flaky(failures=0, result={"output": "fb"})
    outcome = asyncio.run(
        execute_node(
            node=node_def(uses="nope", maxRetries=3, fallback="FB"),
            registry={"fb": fallback},
            context=make_ctx(),
            middleware=[mw],
            fallback_node=node_def("FB", uses="fb"),
            make_fallback_context=lambda d: make_ctx("FB"),
        )
    )
    assert str(outcome.error) == "Node 'A' failed: Implementation for 'nope' not found."
    assert outcome.error.fatal
    assert outcome.attempts == 0
    assert fallback.calls == [] and calls == []
    assert not outcome.fallback_executed


def test_a_fatal_node_failure_raised_by_the_node_stops_retries():
    calls: list[int] = []

    def fatal(ctx):
        calls.append(ctx.attempt)
        raise NodeFailure("A", "bad credentials", fatal=True)

    outcome = execute(fatal, node=node_def(maxRetries=3))
    assert calls == [1]
    assert str(outcome.error) == "Node 'A' failed: bad credentials"


def test_a_cancelled_run_does_not_start_the_node_or_its_fallback():
    impl, fallback = Flaky(failures=0), Flaky(failures=0)
    signal = threading.Event()
    signal.set()
    outcome = execute(
        impl,
        node=node_def(fallback="FB"),
        ctx=make_ctx(signal=signal),
        extra_registry={"fb": fallback},
        fallback_node=node_def("FB", uses="fb"),
    )
    assert impl.calls == [] and fallback.calls == []
    assert str(outcome.error) == "Node 'A' failed: Workflow cancelled"


def test_cancellation_is_checked_before_each_retry():
    signal = threading.Event()

    def fails_then_cancels(ctx):
        signal.set()
        raise RuntimeError("boom")

    outcome = execute(fails_then_cancels, node=node_def(maxRetries=3), ctx=make_ctx(signal=signal))
    assert outcome.attempts == 1
    assert str(outcome.error) == "Node 'A' failed: Workflow cancelled"


# -- middleware ----------------------------------------------------------------------------


class Recorder:
    def __init__(self, name: str, trace: list[str]) -> None:
        self.name, self.trace = name, trace

    async def around_node(self, view, node_id, next_):
        self.trace.append(f"{self.name}>")
        try:
            return await next_()
        finally:
            self.trace.append(f"{self.name}<")

    def before_node(self, view, node_id):
        self.trace.append(f"before:{self.name}")

    async def after_node(self, view, node_id, result, error):
        self.trace.append(f"after:{self.name}")


def test_middleware_runs_in_the_verified_ts_order_with_before_and_after_once_per_node():
    trace: list[str] = []
    impl = Flaky(failures=2, result={"output": 1})
    original_call = impl.__call__

    def node(ctx):
        trace.append(f"node#{ctx.attempt}")
        return original_call(ctx)

    outcome = execute(
        node,
        node=node_def(maxRetries=3),
        middleware=[Recorder("m1", trace), Recorder("m2", trace)],
    )
    assert outcome.ok
    assert trace == [
        "m1>", "m2>", "before:m1", "before:m2",
        "node#1", "node#2", "node#3",
        "after:m1", "after:m2", "m2<", "m1<",
    ]  # fmt: skip


def test_ts_shaped_middleware_with_camel_case_hooks_is_accepted():
    trace: list[str] = []

    class TsStyle:
        def beforeNode(self, view, node_id):  # noqa: N802
            trace.append(f"before {node_id}")

        def afterNode(self, view, node_id, result, error):  # noqa: N802
            trace.append(f"after {result.output}")

        def aroundNode(self, view, node_id, next_):  # noqa: N802 - sync hook returns next()'s awaitable
            trace.append("around")
            return next_()

    outcome = execute(lambda ctx: {"output": 5}, middleware=[TsStyle()])
    assert outcome.result.output == 5
    assert trace == ["around", "before A", "after 5"]


def test_after_hooks_receive_the_raw_error_and_middleware_sees_the_context_view():
    seen: dict[str, Any] = {}
    error = ValueError("raw")

    def boom(ctx):
        raise error

    def after(view, node_id, result, err):
        seen.update(view=view, result=result, error=err)

    ctx = make_ctx()
    outcome = execute(boom, ctx=ctx, middleware=[{"after_node": after}])
    assert seen == {"view": ctx.context, "result": None, "error": error}
    assert str(outcome.error) == "Node 'A' failed: raw"


def test_an_exception_in_a_before_hook_fails_the_node_and_after_hooks_still_run():
    impl = Flaky(failures=0)
    errors: list[Any] = []

    def before(view, node_id):
        raise PermissionError("not allowed")

    outcome = execute(
        impl,
        middleware=[{"before_node": before, "after_node": lambda v, n, r, e: errors.append(e)}],
    )
    assert impl.calls == []
    assert str(outcome.error) == "Node 'A' failed: not allowed"
    assert isinstance(errors[0], PermissionError)


def test_an_around_hook_that_does_not_call_next_supplies_the_result():
    impl = Flaky(failures=0)
    outcome = execute(impl, middleware=[{"around_node": lambda v, n, nxt: {"output": "cached"}}])
    assert impl.calls == []
    assert outcome.result == NodeResult(output="cached")


def test_an_around_hook_that_neither_calls_next_nor_returns_a_result_fails_the_node():
    outcome = execute(Flaky(failures=0), middleware=[{"around_node": lambda v, n, nxt: None}])
    assert "did not call next() and returned no result" in str(outcome.error)


def test_an_around_hook_that_swallows_the_error_of_next_does_not_rescue_the_node():
    async def swallow(view, node_id, next_):
        try:
            return await next_()
        except Exception:
            return {"output": "masked"}

    outcome = execute(Flaky(failures=99), middleware=[{"around_node": swallow}])
    assert not outcome.ok
    assert str(outcome.error) == "Node 'A' failed: boom"


def test_an_around_hook_cannot_replace_the_result_of_a_successful_next_as_ts():
    async def replace(view, node_id, next_):
        await next_()
        return {"output": "replaced"}

    outcome = execute(lambda ctx: {"output": "real"}, middleware=[{"around_node": replace}])
    assert outcome.result.output == "real"


# -- fallback ------------------------------------------------------------------------------


def with_fallback(primary: Any, fallback: Any, **primary_config: Any):
    fb_ctx = make_ctx("FB", snapshot={"seed": 1})
    outcome = asyncio.run(
        execute_node(
            node=node_def("A", uses="primary", fallback="FB", **primary_config),
            registry={"primary": primary, "fb": fallback},
            context=make_ctx("A", snapshot={"seed": 1}),
            fallback_node=node_def("FB", uses="fb", maxRetries=2),
            make_fallback_context=lambda definition: fb_ctx,
            sleep=FakeSleep(),
        )
    )
    return outcome, fb_ctx


def test_a_failed_node_runs_its_fallback_inline_and_the_fallback_result_stands_in():
    def primary(ctx):
        ctx.context.set_sync("primary_wrote", True)
        raise RuntimeError("primary broke")

    def fallback(ctx):
        ctx.context.set_sync("fallback_wrote", ctx.node_id)
        return {"output": "from fallback", "action": "fb"}

    outcome, _ = with_fallback(primary, fallback, maxRetries=2)
    assert outcome.ok
    assert outcome.result == NodeResult(output="from fallback", action="fb")
    assert outcome.fallback_executed and outcome.fallback_node_id == "FB"
    assert outcome.catch_error == {"message": "primary broke", "nodeId": "A", "blueprintId": "bp"}
    assert outcome.attempts == 2 and outcome.fallback_attempts == 1
    assert outcome.context_writes == {"primary_wrote": True, "fallback_wrote": "FB"}


def test_the_fallback_has_its_own_retries():
    fallback = Flaky(failures=1, result={"output": "second try"})
    outcome, _ = with_fallback(Flaky(failures=99), fallback)
    assert outcome.result.output == "second try"
    assert fallback.calls == [1, 2]


def test_when_the_fallback_fails_too_the_node_fails_with_the_fallbacks_error():
    outcome, _ = with_fallback(Flaky(failures=99), Flaky(failures=99, message="fallback broke"))
    assert not outcome.ok and not outcome.fallback_executed
    assert str(outcome.error) == "Node 'FB' failed: fallback broke"
    assert outcome.result is None and outcome.catch_error is None


def test_without_a_context_factory_the_fallback_reads_the_jobs_snapshot_with_no_input():
    seen: dict[str, Any] = {}

    def fallback(ctx):
        seen.update(node_id=ctx.node_id, input=ctx.input, seed=ctx.context.get_sync("seed"))
        return {"output": "ok"}

    outcome = asyncio.run(
        execute_node(
            node=node_def("A", uses="primary", fallback="FB"),
            registry={"primary": Flaky(failures=99), "fb": fallback},
            context=make_ctx("A", snapshot={"seed": 1}, input="primary input"),
            fallback_node=node_def("FB", uses="fb"),
        )
    )
    assert outcome.fallback_executed
    assert seen == {"node_id": "FB", "input": UNDEFINED, "seed": 1}


# -- failure reasons and context writes ----------------------------------------------------


def test_the_failure_reason_keeps_the_original_message_fix():
    def broken(ctx):
        raise ConnectionError("db unreachable at 10.0.0.1")

    assert str(execute(broken).error) == "Node 'A' failed: db unreachable at 10.0.0.1"


def test_an_exception_without_a_message_is_named_by_its_class():
    def broken(ctx):
        raise ZeroDivisionError()

    outcome = execute(broken)
    assert str(outcome.error) == "Node 'A' failed: ZeroDivisionError"
    assert isinstance(outcome.error.__cause__, ZeroDivisionError)


def test_context_writes_are_recorded_in_the_outcome_not_applied_to_the_snapshot():
    snapshot = {"keep": 1, "drop": 2}

    async def writer(ctx):
        await ctx.context.set("new", {"n": 1})
        await ctx.context.delete("drop")
        return {"output": await ctx.context.to_json()}

    ctx = make_ctx(snapshot=snapshot)
    outcome = execute(writer, ctx=ctx)
    assert outcome.result.output == {"keep": 1, "new": {"n": 1}}
    assert outcome.context_writes == {"new": {"n": 1}}
    assert outcome.context_deletes == frozenset({"drop"})
    assert snapshot == {"keep": 1, "drop": 2}
    assert ctx.context.snapshot == {"keep": 1, "drop": 2}


def test_a_node_writing_a_reserved_key_fails_with_a_message_naming_the_key():
    outcome = execute(lambda ctx: ctx.context.set_sync("fc:owner", "me"))
    assert "Context key 'fc:owner' is reserved" in str(outcome.error)
    assert outcome.context_writes == {}
