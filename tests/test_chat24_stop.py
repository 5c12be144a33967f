"""/stop in the private chat does what /cancel does.

Users type /stop to stop an answer (the draft's button says stop too); mid-answer it was told
"I don't know /stop" while the answer went on streaming, and charged to its end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.harness import wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 2427
PROMPT = "Tell me about wombats"
ANSWER = " ".join(f"burrow{i}" for i in range(30))
PAUSE_AT = 10  # the fake model waits after this many tokens


async def test_stop_mid_answer_stops_it_as_cancel_does(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.vllm.pauses = {PAUSE_AT}
        stack.telegram.send_text(USER, PROMPT)
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        stack.telegram.send_text(USER, "/stop")
        (message,) = await stack.final_messages(USER)
        history = await stack.stored_turns(USER, 2)
        assert await stack.veil.chat.wait_idle(30)
        said = [m["text"] for m in stack.telegram.sent_messages(USER)]
    assert said == [message["text"]]  # the part written, and no "I don't know /stop"
    assert 0 < len(message["text"]) < len(ANSWER)
    assert ANSWER.startswith(message["text"])
    assert history == [PROMPT, message["text"]]
    assert texts("unknown_command", command="/stop") not in said


async def test_stop_with_nothing_written_says_so(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        stack.telegram.send_text(USER, "/STOP")
        assert await stack.reply_text(USER) == "Nothing is being written right now."
