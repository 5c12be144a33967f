"""Hostile review of the outbox's resends (deliver23): an erasure while one goes out.

``/forget`` erases a user's undelivered answers, and a delivery pass checks each answer's claim
just before it sends it; but a long private answer sent again is several messages, and the
erasure could land between two of them. The rest then still went out (and the note under it)
after the user had erased everything. Each message's count (``Deliveries.took``) now finds
the row gone and stops the resend there. And a bot killed between an answer it sent again and
the note under it sends the note alone at its next start (measured, not changed: killed after
Telegram took that note and before the row is deleted, it sends the note twice; docs/money.md).
A broken-off answer asked in a private topic is sent again in that topic, note and all.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

from bot.formatting import render_parts
from tests.botstack import QUICK_RETRY, TOKEN, process_stack, running_stack
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import split_tokens
from tests.harness import REPO, ManagedProcess, restarted, rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from playground.state import Method

USER = 9331
# About 9,000 characters: three messages of at most 4096.
LONG = " ".join(f"sandpiper{i}" for i in range(700))
ANSWER = " ".join(f"plover{i}" for i in range(30))
BROKE_AT = 12  # the fake model fails after this many tokens
PART = "".join(split_tokens(ANSWER)[:BROKE_AT])
KILL_SITE = REPO / "tests" / "killsite"


class HeldPart(FakeTelegram):
    """``FakeTelegram`` whose sendMessage starting with ``held`` waits until ``release``."""

    def __init__(self, held: str, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.held = held
        self.holding = asyncio.Event()  # set once such a call waits
        self._gate = asyncio.Event()
        self._answer: Method = self._methods["sendMessage"]
        self._methods["sendMessage"] = self._gated

    def release(self) -> None:
        """Let the held call through (answered by the emulator's sendMessage)."""
        self._gate.set()

    async def _gated(self, p: dict[str, Any]) -> object:
        if str(p.get("text", "")).startswith(self.held):
            self.holding.set()
            await self._gate.wait()
        answer = self._answer(p)
        return await answer if asyncio.iscoroutine(answer) else answer


def texts_sent(telegram: FakeTelegram) -> list[str]:
    """The texts of the messages the bot sent to the user."""
    return [str(m.get("text")) for m in telegram.sent_messages(USER)]


async def test_an_answer_sent_again_stops_between_its_messages_once_the_user_erased_it(
    tmp_path: Path,
) -> None:
    first, second, third = (part.text for part in render_parts(LONG))
    telegram = HeldPart(second[:40], token=TOKEN)
    async with running_stack(
        tmp_path,
        answer=LONG,
        sweep_every=0.2,
        max_answer_tokens=2048,
        telegram_server=telegram,
        final_retry_wait=QUICK_RETRY,
    ) as stack:
        # Telegram down past the answer's own tries: its row waits for a delivery pass.
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
        telegram.send_text(USER, "a long question")
        await wait_until(lambda: bool(rows(tmp_path / "veil.db", "SELECT 1 FROM undelivered")))
        assert await stack.veil.chat.wait_idle(90)
        with capture_logs() as logs:
            telegram.clear_failures()  # back: a pass sends the first message, holds the second
            async with asyncio.timeout(30):
                await telegram.holding.wait()
            assert texts_sent(telegram) == [first]
            telegram.send_text(USER, "/forget")  # meanwhile the user erases everything
            confirm = (await stack.final_messages(USER, 2))[-1]
            (yes, _no) = confirm["reply_markup"]["inline_keyboard"][0]
            telegram.press_button(USER, yes["callback_data"], message_id=confirm["message_id"])
            await telegram.wait_for("editMessageText")
            assert await stack.veil.store.get_user(USER) is None
            telegram.release()  # Telegram takes the second message, sent before the erasure
            await wait_until(
                lambda: any(
                    e["event"] in {"chat.redelivered", "chat.redelivery_withdrawn"} for e in logs
                )
            )
        parts = [text for text in texts_sent(telegram) if text.startswith("sandpiper")]
    assert parts == [first, second]  # the one Telegram was taking as it was erased; no third
    assert third not in parts
    assert rows(tmp_path / "veil.db", "SELECT 1 FROM undelivered") == []
    assert "sandpiper" not in str(logs)  # no text in the log lines


async def test_a_bot_killed_between_an_answer_sent_again_and_its_note_sends_only_the_note(
    tmp_path: Path,
) -> None:
    # The first bot dies as the broken-off part would go out (its row written with the
    # charge); the second as the note would follow the part it sent again (the part counted);
    # the third sends the note alone: neither the part nor the note shows twice.
    data = tmp_path / "data"
    db = data / "veil.db"
    async with process_stack(data, answer=ANSWER) as stack:
        stack.vllm.error_mid_stream_after = BROKE_AT
        for kill_at in ("bot.streaming:DraftSink.complete", "handlers.chat:note_ending"):
            killed = stack.env | {"PYTHONPATH": str(KILL_SITE), "VEIL_TEST_KILL_AT": kill_at}
            bot = await ManagedProcess.start("-m", "bot", env=killed)
            if kill_at.startswith("bot.streaming"):  # the second resends before it has started
                await bot.wait_for_line("bot.started")
                stack.telegram.send_text(USER, "a question")
            assert await bot.wait() != 0
            assert rows(db, "SELECT ending FROM undelivered") == [("broke_off",)]
        assert [m.get("text") for m in stack.telegram.sent_messages(USER)] == [PART]
        assert rows(db, "SELECT parts_taken FROM undelivered") == [(1,)]
        async with restarted(stack.env, db) as bot:
            pass
        assert PART not in bot.output
        part, note = stack.telegram.sent_messages(USER)
    assert part["text"] == PART
    assert note["text"].startswith("⚠️ The answer broke off here")
    assert rows(db, "SELECT outcome FROM holds") == [("settled",)]


async def test_a_broken_off_answer_in_a_topic_is_sent_again_in_that_topic_with_its_note(
    tmp_path: Path,
) -> None:
    telegram = FakeTelegram(token=TOKEN)
    telegram.state.topics.enabled = True  # the bot has topics in private chats
    async with running_stack(
        tmp_path,
        answer=ANSWER,
        sweep_every=0.2,
        telegram_server=telegram,
        final_retry_wait=QUICK_RETRY,
    ) as stack:
        stack.telegram.send_text(USER, "/new")
        await stack.final_messages(USER, 2)  # in the new topic, and in the chat
        (thread,) = {t.thread_id for t in telegram.state.topics.of(USER)}
        stack.vllm.error_mid_stream_after = BROKE_AT
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
        telegram.send_text(USER, "a question", thread_id=thread)
        await wait_until(lambda: bool(rows(tmp_path / "veil.db", "SELECT 1 FROM undelivered")))
        assert await stack.veil.chat.wait_idle(90)
        assert rows(tmp_path / "veil.db", "SELECT thread_id, ending FROM undelivered") == [
            (thread, "broke_off")
        ]
        telegram.clear_failures()
        await wait_until(lambda: rows(tmp_path / "veil.db", "SELECT 1 FROM undelivered") == [])
        *_, part, note = await stack.final_messages(USER, 4)
    assert part["text"] == PART
    assert part["reply_to_message"]["text"] == "a question"
    assert note["text"].startswith("⚠️ The answer broke off here")
    assert [m.get("message_thread_id") for m in (part, note)] == [thread, thread]
