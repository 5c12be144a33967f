"""/stop as users type it, and from someone else in a group.

Addressed to the bot (``/stop@bot``, as a tap on a command in a message sends it), with words
after it, in any case: each stops the answer being written, as /cancel does. Another member's
/stop in a group (or in their own chat) stops nobody's answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.botstack import running_stack
from tests.harness import wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER, OTHER, GROUP = 2442, 2443, -1002442
ANSWER = " ".join(f"otter{i}" for i in range(30))
PAUSE_AT = 10  # the fake model waits after this many tokens


@pytest.mark.parametrize("stop", ["/stop@veil_test_bot", "/stop that, please", "/Stop"])
async def test_stop_as_typed_stops_the_answer(tmp_path: Path, stop: str) -> None:
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        stack.vllm.pauses = {PAUSE_AT}
        stack.telegram.send_text(USER, "Tell me about otters")
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        stack.telegram.send_text(USER, stop)
        (message,) = await stack.final_messages(USER)
        assert await stack.veil.chat.wait_idle(30)
        said = [m["text"] for m in stack.telegram.sent_messages(USER)]
    assert said == [message["text"]]
    assert 0 < len(message["text"]) < len(ANSWER)


async def test_stop_from_another_member_in_a_group_stops_nothing(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        stack.vllm.pauses = {PAUSE_AT}
        stack.telegram.send_text(USER, "@veil_test_bot tell me about otters", chat_id=GROUP)
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        stack.telegram.send_text(OTHER, "/stop@veil_test_bot", chat_id=GROUP)
        stack.telegram.send_text(OTHER, "/stop")
        assert await stack.reply_text(OTHER) == "Nothing is being written right now."
        stack.vllm.pauses = set()
        stack.vllm.resume()
        assert await stack.veil.chat.wait_idle(30)
        group = [m.get("text") for m in stack.telegram.sent_messages(GROUP)]
    assert ANSWER in group  # answered whole: the other member's /stop stopped nothing
    assert "Nothing is being written right now." not in group


async def test_stop_sent_while_an_album_gathers_drops_it(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for name, data in (("a.txt", b"alpha\n"), ("b.txt", b"beta\n")):
            document = stack.telegram.media.receive(data, file_name=name, mime_type="text/plain")
            stack.telegram.user.send_message_of(
                USER, "document", document=document, media_group_id="album-24f"
            )
        stack.telegram.send_text(USER, "/stop@veil_test_bot")
        await stack.final_messages(USER, 1)
        stack.telegram.send_text(USER, "Something else, then.")
        turns = await stack.stored_turns(USER, 2)
        assert await stack.veil.chat.wait_idle(10)
        sent = [str(m.get("text", "")) for m in stack.telegram.sent_messages(USER)]
    assert sent == ["Stopped.", "Hello from the fake model."]
    assert turns == ["Something else, then.", "Hello from the fake model."]
    assert len(stack.vllm.requests) == 1
