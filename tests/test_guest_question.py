"""A summons's question reaches the model as written: only Veil's mention is taken out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_groups import ANN, ANSWER, FAST, GROUP

if TYPE_CHECKING:
    from pathlib import Path

FRIENDS = -1_009_876_543  # a chat Veil is not in: a summons there is a guest query
CODE = "```\ndef area(r):\n    return 3.14 * r * r\n```"


@pytest.mark.parametrize(
    ("sent", "asked"),
    [
        (f"@veil_test_bot, why is this wrong?\n\n{CODE}", f"why is this wrong?\n\n{CODE}"),
        ("Shopping:\n- eggs\n- milk\n@veil_test_bot what is missing?", None),
    ],
)
@pytest.mark.parametrize("where", ["guest", "group"])
async def test_a_questions_line_breaks_and_indentation_reach_the_model(
    tmp_path: Path, where: str, sent: str, asked: str | None
) -> None:
    # A guest summons was split on whitespace and joined with single spaces: code lost its
    # lines and indentation, a list its items, before the model saw it. A group's kept them.
    expected = asked if asked is not None else sent.replace("\n@veil_test_bot ", "\n")
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        if where == "guest":
            stack.telegram.guest_message(ANN, sent, chat_id=FRIENDS)
        else:
            stack.telegram.send_text(ANN, sent, chat_id=GROUP)
        await wait_until(lambda: stack.vllm.requests != [])
    assert stack.vllm.requests[0]["messages"][-1] == {"role": "user", "content": expected}
