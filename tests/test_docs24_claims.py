"""Numbers and log fields today's docs give, read from the code they describe.

An operator reads docs/operations.md and docs/payments-ton.md to know how often a final answer
is tried, how far off a phone's clock may be, and which fields a log line carries: each claim
here is checked against the constant or the log call it names, so the two cannot drift apart.
"""

from __future__ import annotations

import ast
import re

from bot.settings import BotSettings
from bot.streaming import FINAL_TRIES
from tests.harness import REPO


def _doc(name: str) -> str:
    """A doc's text with its line breaks and indentation folded into single spaces."""
    return " ".join((REPO / name).read_text(encoding="utf-8").split())


def _logged_fields(path: str, event: str) -> set[str]:
    """The keyword fields of every log call in ``path`` that names ``event``."""
    fields: set[str] = set()
    for node in ast.walk(ast.parse((REPO / path).read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == event
        ):
            fields |= {keyword.arg for keyword in node.keywords if keyword.arg is not None}
    assert fields, f"{event} is not logged in {path}"
    return fields


def test_final_answer_tries_are_counted_as_the_code_makes_them() -> None:
    wait = BotSettings.model_fields["final_retry_wait"].default
    waits = [f"{wait * 2**n:g}" for n in range(FINAL_TRIES - 1)]
    spaced = f"{', '.join(waits[:-1])} and {waits[-1]} s apart"
    assert f"up to {FINAL_TRIES} tries in all, {spaced}" in _doc("docs/operations.md")


def test_the_phone_clock_passage_names_the_pages_own_skew() -> None:
    protocol = (REPO / "webapp/src/protocol.js").read_text(encoding="utf-8")
    match = re.search(r"function verifyBundle\(wire, pinned, now, skew = (\d+)\)", protocol)
    assert match is not None
    skew = match.group(1)
    ops = _doc("docs/operations.md")
    assert f"a phone more than {skew} s behind a fresh key, or more than {skew} s past a" in ops


def test_the_ignored_date_line_is_documented_with_its_fields() -> None:
    fields = _logged_fields("services/ton/reader.py", "ton.clock_date_ignored")
    doc = _doc("docs/payments-ton.md")
    told = re.search(r"`ton\.clock_date_ignored` \(a warning, ([^)]*)\)", doc)
    assert told is not None
    assert set(re.findall(r"`(\w+)`", told.group(1))) == fields
