"""One user, two hands, and /history: a question sent, then another conversation chosen.

A question sent once the previous answer's stream has ended waits for that answer to be stored
and is answered "with it in its history" (README). Sent from the phone, with the laptop's
/history list switching to another conversation right after it, the question was asked in the
conversation switched to, without the answer it followed, and stored there.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tests.botstack import TOKEN, running_stack
from tests.fakes.telegram import FakeTelegram
from tests.test_bot_topics import echo

if TYPE_CHECKING:
    from pathlib import Path

    from playground.state import Method

USER = 2426


class HeldAnswer(FakeTelegram):
    """``FakeTelegram`` that holds the first message starting with ``prefix`` until released."""

    def __init__(self, prefix: str, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.prefix = prefix
        self.holding = asyncio.Event()  # set once that message waits
        self.gate = asyncio.Event()
        self._send: Method = self._methods["sendMessage"]
        self._methods["sendMessage"] = self._gated

    async def _gated(self, p: dict[str, Any]) -> object:
        if str(p.get("text", "")).startswith(self.prefix) and not self.holding.is_set():
            self.holding.set()
            await self.gate.wait()
        sent = self._send(p)
        return await sent if asyncio.iscoroutine(sent) else sent


async def test_a_question_sent_before_a_switch_is_asked_where_it_was_sent(tmp_path: Path) -> None:
    telegram = HeldAnswer("re: second", token=TOKEN)
    async with running_stack(tmp_path, answer=echo, telegram_server=telegram) as stack:
        stack.telegram.send_text(USER, "first")
        await stack.final_messages(USER, 1)
        assert await stack.veil.chat.wait_idle(30)
        stack.telegram.send_text(USER, "/new")
        await stack.final_messages(USER, 2)
        stack.telegram.send_text(USER, "/history")
        listing = (await stack.final_messages(USER, 3))[-1]
        (older,) = [
            row[0]
            for row in listing["reply_markup"]["inline_keyboard"]
            if not row[0]["text"].startswith("✅")
        ]
        stack.telegram.send_text(USER, "second")
        async with asyncio.timeout(10):
            await telegram.holding.wait()  # its stream ended, its final message going out
        stack.telegram.send_text(USER, "third")  # waits for "second" to be stored
        stack.telegram.press_button(USER, older["callback_data"], message_id=listing["message_id"])
        await stack.answered_presses(1)
        telegram.gate.set()
        await stack.final_messages(USER, 5)
        assert await stack.veil.chat.wait_idle(30)
        asked = [m["content"] for m in stack.vllm.requests[-1]["messages"]]
        conversations = await stack.veil.store.conversations(USER)
        stored = {
            c.conversation_id: [
                t.text for t in await stack.veil.store.history(USER, c.conversation_id)
            ]
            for c in conversations
        }
    assert "second" in asked  # "third" follows on from the answer to "second"
    assert "first" not in asked
    assert sorted(stored.values()) == sorted(
        [
            ["first", "re: first and a few more words to stream"],
            [
                "second",
                "re: second and a few more words to stream",
                "third",
                "re: third and a few more words to stream",
            ],
        ]
    )
