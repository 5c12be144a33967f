"""A group placeholder left behind, and its stop button pressed once its answer has ended.

Telegram took the placeholder, but the bot never learned which message it was: its reply
named none (a proxy mangling it), or came after the send had timed out. The placeholder stood
with "⏳ …" and its stop button for good, beside the answer (or the failure told); a press of
that button, by the asker too, was told "Only the person who asked can stop this answer", and
the placeholder stayed. The press names the message: it now says nothing more comes there,
its button gone, and the presser is told the answer has ended.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.harness import wait_until
from tests.test_bot_groups import ANN, ANSWER, BOB, FAST, GROUP, QUESTION, final_reply, replies
from tests.test_bot_groups_placeholder import PLACEHOLDER, is_placeholder

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from tests.botstack import Stack

SEND_TIMEOUT_S = 2  # the bot's session gives up on a call after this long (aiogram's: 60)


def stop_data(message: dict[str, Any]) -> str:
    """The callback data of the stop button under ``message``."""
    ((button,),) = message["reply_markup"]["inline_keyboard"]
    data = button["callback_data"]
    assert isinstance(data, str)
    assert data.startswith("stop:")
    return data


async def pressed(stack: Stack, user: int, data: str, message: dict[str, Any]) -> str:
    """``user`` presses the button ``data`` under ``message``; the toast they are shown."""
    before = len(stack.telegram.calls_of("answerCallbackQuery"))
    stack.telegram.press_button(user, data, message_id=message["message_id"], chat_id=GROUP)
    await wait_until(lambda: len(stack.telegram.calls_of("answerCallbackQuery")) > before)
    return str(stack.telegram.calls_of("answerCallbackQuery")[before].params.get("text"))


@contextlib.asynccontextmanager
async def asking(
    tmp_path: Path, mode: str, call_timeout: int | None = None
) -> AsyncIterator[tuple[Stack, HostileTelegram]]:
    """Ann asks in the group; Telegram answers her placeholder's send in ``mode``.

    ``call_timeout``: the seconds the bot's calls wait for a reply from then on (the poll's own
    timeout is set already).
    """
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", mode, when=is_placeholder)
    async with running_stack(tmp_path, answer=ANSWER, telegram_server=telegram, **FAST) as s:
        if call_timeout is not None:
            s.veil.bot.session.timeout = call_timeout
        s.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        yield s, telegram


async def test_a_placeholder_whose_reply_named_none_is_settled_by_its_stop_button(
    tmp_path: Path,
) -> None:
    async with asking(tmp_path, "unnamed") as (s, _telegram):
        texts = s.veil.catalogs.for_language("en")
        (final,) = await final_reply(s)
        assert await s.veil.chat.wait_idle(10)
        orphan, answered = replies(s)
        assert orphan["text"] == PLACEHOLDER
        data = stop_data(orphan)
        toast = await pressed(s, ANN, data, orphan)
        assert toast == texts("stop_ended")  # the asker was told it was not theirs to stop
        await wait_until(lambda: "reply_markup" not in replies(s)[0], within=10)
        # A late press of the same button under the answer (its final edit still to come):
        # its text is the answer's, and stays.
        late = await pressed(s, BOB, data, answered)
        settled, kept = replies(s)
    assert final == answered
    assert settled["text"] == texts("placeholder_left")
    assert late == texts("stop_ended")
    assert kept["text"] == ANSWER


async def test_a_placeholder_whose_send_timed_out_is_settled_by_its_stop_button(
    tmp_path: Path,
) -> None:
    async with asking(tmp_path, "late", call_timeout=SEND_TIMEOUT_S) as (s, telegram):
        texts = s.veil.catalogs.for_language("en")
        await wait_until(lambda: telegram.held == 1, within=10)
        assert await s.veil.chat.wait_idle(30)  # the send timed out: the asker was told
        telegram.answer_late()
        (orphan,) = replies(s)
        assert orphan["text"] == PLACEHOLDER
        toast = await pressed(s, ANN, stop_data(orphan), orphan)
        assert toast == texts("stop_ended")
        await wait_until(lambda: "reply_markup" not in replies(s)[0], within=10)
        (settled,) = replies(s)
        told = s.telegram.ephemeral_messages(GROUP, ANN)
        asked = len(s.vllm.requests)
    assert settled["text"] == texts("placeholder_left")
    assert told  # the failure, told to the asker alone
    assert asked == 0


async def test_a_stop_pressed_as_its_placeholder_goes_up_is_no_answer_ended(
    tmp_path: Path,
) -> None:
    # The placeholder shows in the group as soon as Telegram takes it; the bot learns its id,
    # and asks the model, a round trip later (a slow Telegram: a long one). A press then found
    # no answer in progress: a member was told the answer had ended and the placeholder was
    # edited to say nothing more comes there, just before the answer streamed into it; its
    # asker, told the same, was answered in full and charged.
    async with asking(tmp_path, "late") as (s, telegram):
        texts = s.veil.catalogs.for_language("en")
        await wait_until(lambda: telegram.held == 1, within=10)
        (placeholder,) = replies(s)
        data = stop_data(placeholder)
        others = await pressed(s, BOB, data, placeholder)
        askers = await pressed(s, ANN, data, placeholder)
        telegram.answer_late()
        (final,) = await final_reply(s)
        assert await s.veil.chat.wait_idle(10)
        edits = [str(c.params.get("text")) for c in s.telegram.calls_of("editMessageText")]
        asked = len(s.vllm.requests)
    assert others == texts("stop_not_yours")
    assert askers == texts("stopping")
    assert texts("placeholder_left") not in edits
    assert final["text"] == texts("cancelled")  # stopped before a word, as /stop then does
    assert asked == 0


async def test_a_placeholder_left_behind_is_settled_once_however_often_it_is_pressed(
    tmp_path: Path,
) -> None:
    # Each press until the edit landed queued an edit of its own at the group's pace: a member
    # tapping the button (or a client pressing it by the hundred) spent the slots every other
    # member's answer waits for, on edits that changed nothing.
    async with asking(tmp_path, "unnamed") as (s, telegram):
        await final_reply(s)
        assert await s.veil.chat.wait_idle(10)
        orphan, _answered = replies(s)
        data = stop_data(orphan)
        # The first edit's reply held: every press comes while it is on its way.
        ours = orphan["message_id"]
        telegram.misbehave("editMessageText", "late", when=lambda p: p.get("message_id") == ours)
        before = len(s.telegram.calls_of("answerCallbackQuery"))
        for _ in range(PRESSES):
            s.telegram.press_button(BOB, data, message_id=ours, chat_id=GROUP)
        await wait_until(
            lambda: len(s.telegram.calls_of("answerCallbackQuery")) == before + PRESSES
        )
        await wait_until(lambda: telegram.held == 1)
        telegram.answer_late()
        # Each press's handler ends once its edit is made (or none was asked).
        assert await s.veil.operations.in_flight.wait_idle(10)
        edits = [
            c
            for c in s.telegram.calls_of("editMessageText")
            if c.params.get("message_id") == orphan["message_id"]
        ]
    assert len(edits) == 1


PRESSES = 5
