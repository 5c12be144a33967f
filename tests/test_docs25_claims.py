"""Today's numbers, names and log lines in the docs, read from the code they describe.

An operator greps the log for the events docs/operations.md, docs/money.md and
docs/payments-ton.md name, and reads there how long a plan's renewal is waited for or how old a
cached toncenter answer may be; a newcomer reads in the README which group commands Veil takes.
Each claim here is checked against the constant, the log call or the handler's registration it
names, so a change to the code that leaves the doc behind fails here.
"""

from __future__ import annotations

import ast
import inspect
import re

import pytest

from gateway.limits import STEP_KEPT, Limits
from gateway.settings import GatewaySettings
from models.migrations import MIGRATIONS
from models.store import DATA_KEYS_KEPT
from services.shop import PAYING_S, RENEWAL_GRACE_S
from services.ton.toncenter import MAX_AGE_S
from tests.harness import REPO, run_gateway

# How the docs write a span of seconds; a value not here is one the docs do not say yet.
SPANS = {60: "a minute", 300: "five minutes", 3600: "an hour", 86_400: "a day"}
LEVELS = ("debug", "info", "warning", "error", "exception", "critical")


def _doc(name: str) -> str:
    """A doc's text with its line breaks and indentation folded into single spaces."""
    return " ".join((REPO / name).read_text(encoding="utf-8").split())


def _thousands(number: int) -> str:
    """``number`` as the docs write it: ``1,000``."""
    return f"{number:,}"


def _logged(path: str, event: str) -> tuple[set[str], set[str]]:
    """The levels and keyword fields of every log call in ``path`` that names ``event``."""
    levels: set[str] = set()
    fields: set[str] = set()
    for node in ast.walk(ast.parse((REPO / path).read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LEVELS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == event
        ):
            levels.add(node.func.attr)
            fields |= {keyword.arg for keyword in node.keywords if keyword.arg is not None}
    assert levels, f"{event} is not logged in {path}"
    return levels, fields


# (where it is logged, the event, the doc that tells the operator of it, the level it states)
TODAYS_EVENTS = [
    ("services/ton/toncenter.py", "ton.clock_age_ignored", "docs/payments-ton.md", "warning"),
    ("services/ton/reader.py", "ton.page_out_of_order", "docs/payments-ton.md", "warning"),
    ("services/ton/watcher.py", "ton.cursor_vanished", "docs/payments-ton.md", "warning"),
    ("services/shop_cancel.py", "stars.plan_not_canceled", "docs/money.md", "warning"),
    ("services/shop_cancel.py", "stars.plan_canceled", "docs/money.md", "info"),
    ("handlers/replies.py", "replies.pressed_message_gone", "docs/operations.md", "info"),
    ("handlers/groups/commands.py", "groups.stopped_by_command", "docs/operations.md", None),
    ("handlers/groups/answer.py", "groups.withdrawn", "docs/operations.md", None),
    ("handlers/chat.py", "chat.note_refused", "docs/operations.md", None),
    ("bot/streaming.py", "streaming.notice_unreadable", "docs/operations.md", None),
]


@pytest.mark.parametrize(("path", "event", "doc", "level"), TODAYS_EVENTS)
def test_todays_log_lines_are_told_with_their_fields_and_level(
    path: str, event: str, doc: str, level: str | None
) -> None:
    levels, fields = _logged(path, event)
    text = _doc(doc)
    at = text.find(f"`{event}`")
    assert at >= 0, f"{doc} does not name {event}"
    # What the doc says right after naming the line: its level and fields, in backticks
    # (``full=true``, ``how``: ``stopped`` name the field before the value).
    told = text[at + len(event) + 2 : at + len(event) + 2 + 200]
    named = {re.split(r"[=:]", word)[0] for word in re.findall(r"`([^`]+)`", told)}
    assert fields <= named, f"{doc} names {named} after {event}; the code logs {fields}"
    if level is not None:
        assert levels == {level}
        assert re.match(rf"\W*(a |with )?{level}\b", told), told[:40]


def _doc_names() -> list[str]:
    return sorted(f"docs/{path.name}" for path in (REPO / "docs").glob("*.md"))


def test_every_migration_the_docs_name_is_one_the_code_applies() -> None:
    applied = {migration.__name__ for migration in MIGRATIONS}
    named = {
        (name, doc)
        for doc in ("README.md", *_doc_names())
        for name in re.findall(r"\bm\d{4}_[a-z0-9_]*[a-z0-9]", _doc(doc))
    }
    assert {"m0021_ids_not_reused", "m0022_ton_chain_since"} <= {name for name, _ in named}
    assert {(name, doc) for name, doc in named if name not in applied} == set()


def test_the_plan_windows_are_the_shops_own() -> None:
    money = _doc("docs/money.md")
    assert f"not within `PAYING_S` ({PAYING_S} s) of the order's latest approval" in money
    assert f"for {SPANS[RENEWAL_GRACE_S]} after the end (`RENEWAL_GRACE_S`)" in money
    assert "pre-checkout refuses a plan order (`plan_renewal_due`)" in money


def test_a_cached_answers_age_is_bounded_as_the_client_bounds_it() -> None:
    ton = _doc("docs/payments-ton.md")
    assert f"or more than {SPANS[MAX_AGE_S]} (`MAX_AGE_S`)" in ton


def test_the_data_keys_kept_are_counted_as_the_store_counts_them() -> None:
    kept = _thousands(DATA_KEYS_KEPT)
    threat = _doc("docs/threat-model.md")
    assert f"the {kept} users whose history it used last (`models.store.DATA_KEYS_KEPT`)" in threat
    assert f"`DATA_KEYS_KEPT` = {kept} now" in _doc("docs/benchmarks.md")


def test_the_uptime_benchmarks_pace_and_the_gateways_bounds_are_the_codes() -> None:
    bench = _doc("docs/benchmarks.md")
    tree = ast.parse((REPO / "bench/uptime.py").read_text(encoding="utf-8"))
    batch = next(
        keyword.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value == "--batch"
        for keyword in node.keywords
        if keyword.arg == "default" and isinstance(keyword.value, ast.Constant)
    )
    assert isinstance(batch, int)
    streams = inspect.signature(run_gateway).parameters["max_streams"].default
    assert f"({batch} at a time, within the test gateway's {streams} streams a client)" in bench
    ttl = GatewaySettings.model_fields["receipt_ttl"].default
    most = Limits().max_receipts
    assert f"`VEIL_RECEIPT_TTL` {ttl:g} s, at most {_thousands(most)} (`Limits.max_receipts`)" in (
        bench
    )
    skew = GatewaySettings.model_fields["max_clock_skew"].default
    assert f"(`VEIL_MAX_CLOCK_SKEW` {skew} s, + {STEP_KEPT} s)" in bench


def _group_commands(handler: str) -> list[str]:
    """The commands ``handlers/groups/__init__.py``'s router sends to ``handler``."""
    tree = ast.parse((REPO / "handlers/groups/__init__.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "register"
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == handler
        ):
            command = node.args[1]
            assert isinstance(command, ast.Call)
            return [
                arg.value
                for arg in command.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            ]
    raise AssertionError(f"{handler} is not registered")


def test_the_readme_names_the_group_commands_the_group_router_takes() -> None:
    readme = _doc("README.md")
    stop = _group_commands("cmd_stop")
    helps = _group_commands("cmd_help")
    assert sorted(stop) == ["cancel", "stop"]
    assert sorted(helps) == ["help", "start"]
    assert (
        f"in a group, `/{stop[0]}@yourbot` or `/{stop[1]}@yourbot` (or a bare `/{stop[0]}` or "
        in (readme)
    )
    assert f"in a group, `/{helps[0]}` (as the group's command menu sends it" in readme
    assert f"or `/{helps[1]}@yourbot` tells you alone" in readme
