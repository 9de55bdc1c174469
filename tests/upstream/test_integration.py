"""Rewrites upstream Flowcraft's packages/core/test/integration.test.ts (end-to-end workflow scenarios)."""

from __future__ import annotations

import asyncio
from typing import Any

from flowcraft_sqs import FlowRuntime
from flowcraft_sqs.events import FlowcraftEvent


def build(bp_id: str, nodes: dict[str, Any], edges: list[tuple[str, str] | tuple[str, str, str]]
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A blueprint with one implementation per node; an edge is (source, target[, action])."""
    blueprint = {
        "id": bp_id,
        "nodes": [{"id": node_id, "uses": node_id} for node_id in nodes],
        "edges": [{"source": e[0], "target": e[1], **({"action": e[2]} if len(e) > 2 else {})} for e in edges],
    }
    return blueprint, dict(nodes)


def run(bp: dict[str, Any], registry: dict[str, Any], context: dict[str, Any], event_bus: Any = None) -> Any:
    runtime = FlowRuntime(registry=registry, event_bus=event_bus)
    return asyncio.run(asyncio.wait_for(runtime.run(bp, context), 10))


def test_an_order_is_validated_paid_for_and_confirmed() -> None:
    async def validate_order(ctx: Any) -> dict[str, Any]:
        order = await ctx.context.get("order")
        if not order.get("items"):
            raise ValueError("Order must have items")
        if order["total"] <= 0:
            raise ValueError("Invalid order total")
        return {"output": {**order, "validated": True}}

    async def check_inventory(ctx: Any) -> dict[str, Any]:
        order = await ctx.context.get("order")
        issues = [f"Insufficient stock for {item['name']}" for item in order["items"]
                  if (await ctx.context.get(f"inventory_{item['id']}") or 0) < item["quantity"]]
        return {"output": {"available": not issues, "issues": issues},
                "action": "inventory-ok" if not issues else "inventory-issue"}

    async def process_payment(ctx: Any) -> dict[str, Any]:
        order = await ctx.context.get("order")
        await ctx.context.set("payment_id", f"pay_{order['id']}")
        return {"output": {"status": "paid", "amount": order["total"]}}

    async def update_inventory(ctx: Any) -> dict[str, Any]:
        order = await ctx.context.get("order")
        for item in order["items"]:
            stock = await ctx.context.get(f"inventory_{item['id']}") or 0
            await ctx.context.set(f"inventory_{item['id']}", stock - item["quantity"])
        return {"output": "inventory_updated"}

    async def send_confirmation(ctx: Any) -> dict[str, Any]:
        order = await ctx.context.get("order")
        return {"output": {"orderId": order["id"], "paymentId": await ctx.context.get("payment_id"),
                           "status": "confirmed"}}

    bp, registry = build("order-processing", {
        "validate-order": validate_order, "check-inventory": check_inventory, "process-payment": process_payment,
        "update-inventory": update_inventory, "send-confirmation": send_confirmation,
    }, [("validate-order", "check-inventory"), ("check-inventory", "process-payment", "inventory-ok"),
        ("check-inventory", "send-confirmation", "inventory-issue"), ("process-payment", "update-inventory"),
        ("update-inventory", "send-confirmation")])
    order = {"id": "order_123", "total": 40, "items": [
        {"id": "item1", "name": "Widget A", "quantity": 2, "price": 10},
        {"id": "item2", "name": "Widget B", "quantity": 1, "price": 20}]}
    result = run(bp, registry, {"order": order, "inventory_item1": 10, "inventory_item2": 5})
    assert result.status == "completed", result.reason
    assert result.context["_outputs.send-confirmation"]["status"] == "confirmed"
    assert result.context["payment_id"] == "pay_order_123"
    assert result.context["inventory_item1"] == 8
    assert result.context["inventory_item2"] == 4


def test_a_new_user_is_registered_and_welcomed() -> None:
    async def validate(ctx: Any) -> dict[str, Any]:
        user = await ctx.context.get("user")
        if "@" not in user.get("email", ""):
            raise ValueError("Invalid email")
        if len(user.get("password") or "") < 8:
            raise ValueError("Password too short")
        return {"output": {**user, "validated": True}}

    async def check_exists(ctx: Any) -> dict[str, Any]:
        existing = await ctx.context.get(f"user_{ctx.input.get('email')}")
        return {"output": {"exists": bool(existing)}, "action": "user-exists" if existing else "user-new"}

    async def create_account(ctx: Any) -> dict[str, Any]:
        user_id = "user_1"
        await ctx.context.set(f"user_{ctx.input.get('email')}", {"id": user_id, "status": "pending_verification"})
        await ctx.context.set("current_user_id", user_id)
        return {"output": {"userId": user_id, "status": "created"}}

    async def send_verification(ctx: Any) -> dict[str, Any]:
        user_id = await ctx.context.get("current_user_id")
        await ctx.context.set(f"verification_{user_id}", "token")
        return {"output": {"emailSent": True, "token": "token"}}

    async def setup_preferences(ctx: Any) -> dict[str, Any]:
        prefs = {"theme": "light", "notifications": True, "language": "en"}
        await ctx.context.set(f"prefs_{await ctx.context.get('current_user_id')}", prefs)
        return {"output": prefs}

    async def send_welcome(ctx: Any) -> dict[str, Any]:
        return {"output": {"welcomeSent": True, "userId": await ctx.context.get("current_user_id")}}

    bp, registry = build("user-registration", {
        "validate-user-data": validate, "check-user-exists": check_exists, "create-account": create_account,
        "send-verification-email": send_verification, "setup-preferences": setup_preferences,
        "send-welcome-email": send_welcome,
        "handle-existing-user": lambda ctx: {"output": {"error": "User already exists"}},
    }, [("validate-user-data", "check-user-exists"), ("check-user-exists", "create-account", "user-new"),
        ("check-user-exists", "handle-existing-user", "user-exists"), ("create-account", "send-verification-email"),
        ("create-account", "setup-preferences"), ("send-verification-email", "send-welcome-email"),
        ("setup-preferences", "send-welcome-email")])
    user = {"email": "test@example.com", "password": "securepassword123", "name": "Test User"}
    result = run(bp, registry, {"user": user})
    assert result.status == "completed", result.reason
    assert result.context["current_user_id"] == "user_1"
    assert result.context["_outputs.send-welcome-email"]["welcomeSent"] is True
    assert result.context["prefs_user_1"]["theme"] == "light"


def test_data_flows_through_an_etl_pipeline_with_invalid_records_set_aside() -> None:
    raw = [{"id": 1, "name": "Alice", "age": 25, "city": "NYC"}, {"id": 2, "name": "Bob", "age": 30, "city": "LA"},
           {"id": 3, "name": "Charlie", "age": 35, "city": "NYC"}, {"id": 4, "name": "Diana", "age": None, "city": "Chicago"}]

    def validate(ctx: Any) -> dict[str, Any]:
        valid = [r for r in ctx.input if r["age"] and r["age"] >= 18 and r["name"] and r["city"]]
        invalid = [r for r in ctx.input if r not in valid]
        return {"output": {"valid": valid, "invalid": invalid}, "action": "has-invalid" if invalid else "all-valid"}

    async def transform(ctx: Any) -> dict[str, Any]:
        rows = [{**r, "fullName": f"{r['name']} ({r['age']})", "cityCode": r["city"][:2].upper()} for r in ctx.input["valid"]]
        await ctx.context.set("processed_count", len(rows))
        return {"output": rows}

    async def load(ctx: Any) -> dict[str, Any]:
        ids = [f"db_id_{i + 1}" for i in range(len(ctx.input))]
        await ctx.context.set("inserted_ids", ids)
        return {"output": {"inserted": len(ids), "success": True}}

    async def report(ctx: Any) -> dict[str, Any]:
        processed = await ctx.context.get("processed_count") or 0
        inserted = await ctx.context.get("inserted_ids") or []
        return {"output": {"totalProcessed": processed, "totalInserted": len(inserted),
                           "successRate": len(inserted) / processed, "reportGenerated": True}}

    async def handle_invalid(ctx: Any) -> dict[str, Any]:
        await ctx.context.set("invalid_records", ctx.input["invalid"])
        return {"output": {"logged": len(ctx.input["invalid"]), "needsReview": True}}

    bp, registry = build("data-pipeline", {
        "extract-data": lambda ctx: {"output": raw}, "validate-data": validate, "transform-data": transform,
        "load-to-database": load, "generate-report": report, "handle-invalid-data": handle_invalid,
    }, [("extract-data", "validate-data"), ("validate-data", "transform-data", "all-valid"),
        ("validate-data", "transform-data", "has-invalid"), ("validate-data", "handle-invalid-data", "has-invalid"),
        ("transform-data", "load-to-database"), ("load-to-database", "generate-report"),
        ("handle-invalid-data", "generate-report")])
    result = run(bp, registry, {})
    assert result.status == "completed", result.reason
    assert result.context["processed_count"] == 3
    assert len(result.context["invalid_records"]) == 1
    assert result.context["_outputs.generate-report"]["totalProcessed"] == 3
    assert result.context["_outputs.generate-report"]["successRate"] == 1


def test_a_failed_booking_runs_the_compensation_instead_of_the_payment() -> None:
    cancelled = {"n": 0}

    def book(kind: str) -> Any:
        async def node(ctx: Any) -> dict[str, Any]:
            await ctx.context.set(f"{kind}_booked", True)
            await ctx.context.set(f"{kind}_id", f"{kind}_1")
            return {"output": {"bookingId": f"{kind}_1", "status": "booked"}}
        return node

    async def pay(ctx: Any) -> dict[str, Any]:
        await ctx.context.set("payment_processed", True)
        return {"output": {"paymentId": "pay_789", "amount": 1500}}

    async def cancel(ctx: Any) -> dict[str, Any]:
        for kind in ("flight", "hotel"):
            if await ctx.context.get(f"{kind}_booked"):
                cancelled["n"] += 1
                await ctx.context.set(f"{kind}_cancelled", True)
        return {"output": {"cancelled": cancelled["n"], "compensation": True}}

    bp, registry = build("compensation-test", {
        "book-flight": book("flight"), "book-hotel": book("hotel"), "book-car": lambda ctx: {"action": "failed"},
        "process-payment": pay, "cancel-bookings": cancel, "confirm-booking": lambda ctx: {"output": {"confirmed": True}},
    }, [("book-flight", "book-hotel"), ("book-hotel", "book-car"), ("book-car", "process-payment", "success"),
        ("book-car", "cancel-bookings", "failed"), ("process-payment", "confirm-booking")])
    result = run(bp, registry, {})
    assert result.status == "completed", result.reason
    assert result.context["flight_booked"] is True
    assert result.context["hotel_booked"] is True
    assert result.context["flight_cancelled"] is True
    assert result.context["hotel_cancelled"] is True
    assert "payment_processed" not in result.context
    assert result.context["_outputs.cancel-bookings"]["compensation"] is True


def test_a_long_linear_workflow_reports_every_step_to_the_event_bus() -> None:
    # Upstream records with its InMemoryEventLogger (a testing tool); any bus sees the same events.
    class Recorder:
        def __init__(self) -> None:
            self.events: list[FlowcraftEvent] = []

        def emit(self, event: FlowcraftEvent) -> None:
            self.events.append(event)

    def step(change: Any, number: int) -> Any:
        async def node(ctx: Any) -> dict[str, Any]:
            data = dict(await ctx.context.get("data"))
            data["value"] = change(data["value"])
            await ctx.context.set("data", data)
            await ctx.context.set("step", number)
            return {"output": data["value"]}
        return node

    async def init(ctx: Any) -> dict[str, Any]:
        await ctx.context.set("step", 1)
        await ctx.context.set("data", {"value": 0})
        return {"output": "initialized"}

    async def finalize(ctx: Any) -> dict[str, Any]:
        data = await ctx.context.get("data")
        return {"output": {"finalValue": data["value"], "finalStep": await ctx.context.get("step")}}

    bp, registry = build("debug-workflow", {
        "init": init, "process-1": step(lambda v: v + 10, 2), "process-2": step(lambda v: v * 2, 3),
        "process-3": step(lambda v: v - 5, 4), "finalize": finalize,
    }, [("init", "process-1"), ("process-1", "process-2"), ("process-2", "process-3"), ("process-3", "finalize")])
    recorder = Recorder()
    result = run(bp, registry, {}, event_bus=recorder)
    assert result.status == "completed", result.reason
    assert result.context["_outputs.finalize"] == {"finalValue": 15, "finalStep": 4}  # ((0 + 10) * 2) - 5
    types = [e.type for e in recorder.events]
    assert "workflow:start" in types
    assert "workflow:finish" in types
    assert types.count("node:finish") == 5


def test_a_decision_tree_routes_an_application_to_one_path() -> None:
    def evaluate(ctx: Any) -> dict[str, Any]:
        app = ctx.context.get_sync("application")
        score = 30 if app["experience"] > 5 else 20 if app["experience"] > 2 else 10
        score += 30 if len(app["skills"]) > 3 else 20 if len(app["skills"]) > 1 else 10
        score += {"masters": 25, "bachelors": 20}.get(app["education"], 10)
        action = "high-score" if score >= 75 else "medium-score" if score >= 50 else "low-score"
        return {"output": {**app, "score": score}, "action": action}

    def path(name: str, next_step: str) -> Any:
        return lambda ctx: {"output": {**ctx.input, "path": name, "nextStep": next_step}}

    def screen(key: str, action: str) -> Any:
        return lambda ctx: {"output": {**ctx.input, key: "pass"}, "action": action}

    def decide(ctx: Any) -> dict[str, Any]:
        app = ctx.input
        hire = app.get("technicalResult") == "pass" or app.get("phoneResult") == "pass"
        return {"output": {**app, "finalDecision": "hire" if hire else "reject"}}

    bp, registry = build("decision-tree", {
        "evaluate-application": evaluate, "fast-track-interview": path("fast-track", "technical-interview"),
        "standard-interview": path("standard", "phone-screen"), "review-application": path("review", "manual-review"),
        "technical-interview": screen("technicalResult", "technical-pass"),
        "phone-screen": screen("phoneResult", "phone-pass"), "make-decision": decide,
    }, [("evaluate-application", "fast-track-interview", "high-score"),
        ("evaluate-application", "standard-interview", "medium-score"),
        ("evaluate-application", "review-application", "low-score"),
        ("fast-track-interview", "technical-interview"), ("standard-interview", "phone-screen"),
        ("phone-screen", "make-decision", "phone-pass")])
    application = {"name": "John Doe", "experience": 4, "skills": ["javascript", "react", "node"], "education": "bachelors"}
    result = run(bp, registry, {"application": application})
    assert result.status == "completed", result.reason
    assert result.context["_outputs.make-decision"]["finalDecision"] == "hire"
