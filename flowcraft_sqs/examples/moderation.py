"""The seed document's use case "4.content-moderation", with a fake LLM instead of a real one.

The blueprint has the shape of TypeScript Flowcraft's declarative LLM example (`400`), and
the nodes follow that example's conventions (its `src/nodes.ts`):

    check_for_pii ---------.
    check_for_hate_speech --+--> triage_post --action_approve-----> approve_post_branch -.
    check_for_spam --------'     (llm-router) --action_redact------> redact_post_branch --+--> final_log
                                              --action_ban---------> ban_user_branch ----+    (output,
                                              --action_delete_spam-> delete_spam_branch -'     joinStrategy any)

- the three checks run in parallel (three jobs), and `triage_post` is an `all` join;
- `triage_post` is an `llm-router`: its answer is the *action*, and only the edge with that
  action is taken, so exactly one branch runs: approve, flag (redact the PII), or reject
  (ban the user, or delete the spam);
- `final_log` is an `output` node (an `any` join) that writes `moderation_result` into the
  run's context: the key the seed's `client.ts` prints.

Each node reads `params.inputs` (`{templateVar: sourceKey | [sourceKey, ...]}`, looking up
`_outputs.<key>` first, then the plain context key), fills `params.promptTemplate`, and
asks `ctx.dependencies["llm"]`. The `llm` here is `fake_llm`: deterministic rules, no
network. Put a real model client in `dependencies["llm"]` (any callable prompt -> text)
and the same blueprint runs against it. The TS example's branches are subflows; here they
are plain nodes, so one run is one flat graph.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..protocol import OUTPUTS_PREFIX

BLUEPRINT_ID = "400"  # the TS example's id, which the seed's config names as its main workflow
RESULT_KEY = "moderation_result"  # what the seed's client prints

# --- the fake LLM ------------------------------------------------------------------------

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
PHONE = re.compile(r"\b\d{3}[-. ]\d{3}[-. ]\d{4}\b")
LINK = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
SPAM_PHRASES = ("buy now", "free money", "limited offer", "click here")
SEVERE_PHRASES = ("hurt you", "destroy you")
MODERATE_WORDS = ("idiot", "stupid", "moron")
USER_ID = re.compile(r"\buser-[\w-]+")


def _quoted_text(prompt: str) -> str:
    """The post inside `Text: "..."`, as the example's prompts quote it."""
    match = re.search(r'Text: "(.*)"', prompt, re.DOTALL)
    return match.group(1) if match else prompt


def _field(prompt: str, name: str) -> str:
    match = re.search(rf"- {re.escape(name)}: (.*)", prompt)
    return match.group(1).strip().lower() if match else ""


def _user(prompt: str) -> str:
    match = USER_ID.search(prompt)
    return match.group(0) if match else "unknown user"


def _pii(prompt: str) -> str:
    text = _quoted_text(prompt)
    return "true" if EMAIL.search(text) or PHONE.search(text) else "false"


def _hate_speech(prompt: str) -> str:
    text = _quoted_text(prompt).lower()
    if any(p in text for p in SEVERE_PHRASES):
        return "severe"
    return "moderate" if any(w in text for w in MODERATE_WORDS) else "none"


def _spam(prompt: str) -> str:
    text = _quoted_text(prompt).lower()
    return "true" if LINK.search(text) or any(p in text for p in SPAM_PHRASES) else "false"


def _triage(prompt: str) -> str:
    # The rules the router's prompt spells out, in their order.
    if _field(prompt, "Hate Speech Level") == "severe":
        return "action_ban"
    if _field(prompt, "PII Found") == "true":
        return "action_redact"
    if _field(prompt, "Spam Detected") == "true":
        return "action_delete_spam"
    return "action_approve"


def _redact(prompt: str) -> str:
    text = prompt.split("Original: ", 1)[-1]
    return f"post by {_user(prompt)} redacted: " + PHONE.sub("[PHONE]", EMAIL.sub("[EMAIL]", text))


# (a phrase the prompt contains, the rule that answers it): what the fake "understands".
FAKE_ANSWERS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("Personally Identifiable Information", _pii),
    ("for hate speech", _hate_speech),
    ("commercial spam", _spam),
    ("most appropriate action", _triage),
    ("Remove all PII", _redact),
    ("approved with no issues", lambda p: f"post by {_user(p)} approved: no issues found"),
    ("ban a user", lambda p: f"user {_user(p)} banned for severe hate speech"),
    ("deleting a spam post", lambda p: f"spam post by {_user(p)} deleted"),
)


def fake_llm(prompt: str) -> str:
    """Answers this example's prompts by fixed rules: same prompt, same answer, no network."""
    for marker, answer in FAKE_ANSWERS:
        if marker in prompt:
            return answer(prompt)
    return prompt  # a prompt it does not know: echo it, like a very literal model


# --- the nodes (the TS example's llm-process, llm-condition, llm-router, output) ----------

def resolve_inputs(ctx: Any) -> dict[str, Any]:
    """`params.inputs` -> {templateVar: value}: `_outputs.<key>`, else `<key>`, else ''."""
    return {name: _lookup(ctx, sources)
            for name, sources in (ctx.params.get("inputs") or {}).items()}


def _lookup(ctx: Any, sources: str | list[str]) -> Any:
    for source in [sources] if isinstance(sources, str) else sources:
        for key in (OUTPUTS_PREFIX + source, source):
            value = ctx.context.get_sync(key)
            if value is not None:
                return value
    return ""


def render(ctx: Any) -> str:
    """`params.promptTemplate` with every `{{var}}` filled from `resolve_inputs`."""
    values = resolve_inputs(ctx)
    template = str(ctx.params.get("promptTemplate", ""))
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(values.get(m.group(1), "")), template)


def _ask(ctx: Any) -> str:
    llm = ctx.dependencies.get("llm", fake_llm)
    return str(llm(render(ctx))).strip()


def llm_process(ctx: Any) -> dict[str, Any]:
    return {"output": _ask(ctx)}


def llm_condition(ctx: Any) -> dict[str, Any]:
    answer = _ask(ctx).lower() == "true"
    return {"output": answer, "action": "true" if answer else "false"}


def llm_router(ctx: Any) -> dict[str, Any]:
    action = _ask(ctx)
    return {"output": action, "action": action}


def output(ctx: Any) -> dict[str, Any]:
    """Writes the rendered template to the context under `params.outputKey`."""
    text = render(ctx)
    ctx.context.set_sync(ctx.params.get("outputKey", "final_output"), text)
    return {"output": text}


registry: dict[str, Callable[..., Any]] = {
    "llm-process": llm_process,
    "llm-condition": llm_condition,
    "llm-router": llm_router,
    "output": output,
}

# --- the blueprint -----------------------------------------------------------------------

_POST = {"userPost": "userPost"}


def _node(node_id: str, uses: str, template: str, inputs: Mapping[str, Any],
          **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "uses": uses,
            "params": {"promptTemplate": template, "inputs": dict(inputs), **extra}}


blueprint: dict[str, Any] = {
    "id": BLUEPRINT_ID,
    "nodes": [
        _node("check_for_pii", "llm-condition",
              "Does the following text contain any Personally Identifiable Information (PII) like "
              "an email address, phone number, or physical address? Respond only with 'true' or "
              "'false'.\n\nText: \"{{userPost}}\"", _POST),
        _node("check_for_hate_speech", "llm-process",
              "Analyze the following text for hate speech. Respond with only ONE of the following "
              "severity levels: 'none', 'moderate', or 'severe'.\n\nText: \"{{userPost}}\"", _POST),
        _node("check_for_spam", "llm-condition",
              "Does the following text appear to be commercial spam, containing suspicious links "
              "or promotional language? Respond only with 'true' or 'false'.\n\n"
              "Text: \"{{userPost}}\"", _POST),
        _node("triage_post", "llm-router",
              "Given the following analysis of a user post, decide on the single most appropriate "
              "action. Respond with ONLY ONE of the following action codes: 'action_ban', "
              "'action_redact', 'action_delete_spam', 'action_approve'.\n\n"
              "- Hate Speech Level: {{hate_speech_level}}\n- PII Found: {{pii_found}}\n"
              "- Spam Detected: {{spam_detected}}",
              {"hate_speech_level": "check_for_hate_speech", "pii_found": "check_for_pii",
               "spam_detected": "check_for_spam"}),
        _node("approve_post_branch", "llm-process",
              "The user post from {{userId}} was analyzed and approved with no issues. Create a "
              "simple log message confirming this.", {"userId": "userId"}),
        _node("redact_post_branch", "llm-process",
              "Remove all PII from this post by {{userId}} and replace with placeholders. "
              "Original: {{userPost}}", {**_POST, "userId": "userId"}),
        _node("ban_user_branch", "llm-process",
              "Simulate a database update to ban a user.\n\n"
              "UPDATE users SET status='banned' WHERE id={{userId}};", {"userId": "userId"}),
        _node("delete_spam_branch", "llm-process",
              "Simulate deleting a spam post.\n\nDELETE FROM posts WHERE user_id={{userId}};",
              {"userId": "userId"}),
        {
            "id": "final_log",
            "uses": "output",
            "config": {"joinStrategy": "any"},
            "params": {
                "outputKey": RESULT_KEY,
                "promptTemplate": "{{action}}: {{final_action_taken}}",
                "inputs": {
                    "action": "triage_post",
                    "final_action_taken": ["approve_post_branch", "redact_post_branch",
                                           "ban_user_branch", "delete_spam_branch"],
                },
            },
        },
    ],
    "edges": [
        {"source": "check_for_pii", "target": "triage_post"},
        {"source": "check_for_hate_speech", "target": "triage_post"},
        {"source": "check_for_spam", "target": "triage_post"},
        {"source": "triage_post", "target": "ban_user_branch", "action": "action_ban"},
        {"source": "triage_post", "target": "redact_post_branch", "action": "action_redact"},
        {"source": "triage_post", "target": "delete_spam_branch", "action": "action_delete_spam"},
        {"source": "triage_post", "target": "approve_post_branch", "action": "action_approve"},
        {"source": "approve_post_branch", "target": "final_log"},
        {"source": "redact_post_branch", "target": "final_log"},
        {"source": "ban_user_branch", "target": "final_log"},
        {"source": "delete_spam_branch", "target": "final_log"},
    ],
}

# The seed's initial context for "4.content-moderation" (the post has PII: it is redacted).
SEED_INITIAL_CONTEXT: dict[str, Any] = {
    "userId": "user-456",
    "userPost": "Hi, I need help with my account. My email is test@example.com and my phone is "
                "555-123-4567.",
}

# One post per verdict, for the demo and the tests: (label, initial context, expected action).
SAMPLE_POSTS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("clean post", {"userId": "user-101", "userPost": "Loved the concert last night, thanks!"},
     "action_approve"),
    ("post with PII", dict(SEED_INITIAL_CONTEXT), "action_redact"),
    ("spam", {"userId": "user-303", "userPost": "Buy now!!! Free money at http://spam.example"},
     "action_delete_spam"),
    ("threat", {"userId": "user-404", "userPost": "Log off or I will hurt you."}, "action_ban"),
)
