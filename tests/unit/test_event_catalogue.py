"""docs/webhooks.md's catalogue lists exactly the event types the code can send, each with an example that is
an event of that type whose ``details`` are documented fields and whose ids are printed with their prefix.

The code's types are read from the source itself: the action of every ``.audit(...)`` call (a literal, a
conditional of literals, or a local name assigned only literals), the scheduled notices
(``webhook_events.NOTICE_EVENTS``), and any other string constant in the package spelled like a type of one of
those families (an event sent some other way). A new audited action fails this test until the doc lists it.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from tokengate.core import global_ids
from tokengate.core.webhook_events import NOTICE_EVENTS, TEST_EVENT

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tokengate"
DOC = ROOT / "docs" / "webhooks.md"
EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
HEADING = re.compile(r"^#### `([^`]+)`$", re.MULTILINE)


def _literals(node: ast.AST) -> set[str]:
    """The strings an expression can be, when it is built of literals only (else empty)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _literals(node.body), _literals(node.orelse)
        return body | orelse if body and orelse else set()
    return set()


def _audited_in(tree: ast.AST, path: Path) -> set[str]:
    found: set[str] = set()
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for call in ast.walk(function):
            is_audit = isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "audit"
            if not is_audit or len(call.args) < 2:
                continue
            action = call.args[1]
            values = _literals(action)
            if not values and isinstance(action, ast.Name):  # a local assigned literals only
                assigned = [
                    _literals(node.value)
                    for node in ast.walk(function)
                    if isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == action.id for t in node.targets)
                ]
                values = set().union(*assigned) if assigned and all(assigned) else set()
            assert values, f"{path.name}:{call.lineno}: the audited action is not a literal this test can read"
            found |= values
    return found


def event_types_in_code() -> set[str]:
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(PACKAGE.rglob("*.py"))}
    known: set[str] = set(NOTICE_EVENTS)
    for path, tree in trees.items():
        known |= _audited_in(tree, path)
    families = {name.split(".", 1)[0] for name in known}
    # Any other string constant spelled as a type of these families: an event sent some other way.
    for tree in trees.values():
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
            if EVENT_TYPE.fullmatch(text) and text.split(".", 1)[0] in families:
                known.add(text)
    return known


def catalogue() -> dict[str, str]:
    """Each type the doc's catalogue lists, and its section's text."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index("\n## Catalogue\n")
    end = text.index("\n## ", start + 1)
    section = text[start:end]
    headings = list(HEADING.finditer(section))
    return {
        match.group(1): section[match.end() : headings[index + 1].start() if index + 1 < len(headings) else None]
        for index, match in enumerate(headings)
    }


def test_the_code_sends_the_types_this_test_expects_to_find():
    # Precondition: the scan finds audited actions of every kind (literal, conditional, notice), so an empty
    # or partial scan cannot pass the comparison below by accident.
    found = event_types_in_code()
    for expected in ("service_token.created", "service_token.leak_reported", "user_token.leak_reported"):
        assert expected in found
    assert set(NOTICE_EVENTS) <= found and "webhook.failing" in found
    assert len(found) >= 26


def test_the_catalogue_lists_exactly_the_event_types_of_the_code():
    listed = list(catalogue())
    assert len(listed) == len(set(listed)), "a type is listed twice"
    code = event_types_in_code()
    assert set(listed) - code == set(), "listed in docs/webhooks.md but never sent"
    assert code - set(listed) == set(), "sent by the code but missing from docs/webhooks.md's catalogue"


def _documented_fields(section: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


def _ids(value: object) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in _ids(item)]
    if isinstance(value, list):
        return [text for item in value for text in _ids(item)]
    return [value] if isinstance(value, str) else []


def test_each_example_is_an_event_of_its_type_with_documented_details_and_prefixed_ids():
    for event_type, section in catalogue().items():
        (example,) = re.findall(r"```json\n(.*?)```", section, re.DOTALL)
        event = json.loads(example)
        assert event["type"] == event_type and event["specversion"] == "1.0"
        assert event["subject"] == event["data"]["target_id"]
        details = event["data"]["details"]
        assert set(details) <= _documented_fields(section), f"{event_type}: undocumented details"
        actor = event["data"]["actor"]
        assert global_ids.printed_actor(actor) == actor, f"{event_type}: actor not printed as the API prints it"
        for text in [*_ids(event["data"]), event["subject"]]:
            parsed = global_ids.parse(text)
            assert parsed is None or parsed.type != global_ids.ANY_TOKEN, f"{event_type}: bare id {text}"
        prefix = "notice-" if event_type in NOTICE_EVENTS else "test-" if event_type == TEST_EVENT else "audit-"
        assert event["id"].startswith(prefix)
