"""Hostile review of deliver23: a cut answer still going out (or streaming), and /new meanwhile.

A private answer cut at its length limit whose final message Telegram does not take goes to
the outbox, and its Continue is remembered for the conversation's slot (``_left_cut``) so the
button under the resent answer works. The user may start a fresh conversation (``/new``) while
that final message is still being tried: ``/new`` lets go of the slot's Continue, but the cut
answer then put its own there after it, so its button went on in the new conversation, asking
the model to go on from an answer that conversation does not hold (and charging for it). The
same held for a ``/new`` while the answer still streamed (before deliver23 too), and for the
Retry under an answer that broke off after it: it would ask the question in the fresh one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from playground.wire import ApiError
from tests.botstack import QUICK_RETRY, TOKEN, running_stack
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import split_tokens
from tests.harness import rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from playground.state import Method

USER = 9341
ANSWER = " ".join(f"plover{i}" for i in range(30))
CUT_AT = 16
CUT = "".join(split_tokens(ANSWER)[:CUT_AT])
BROKE_AT = 12  # the fake model fails after this many tokens


class AnswerDown(FakeTelegram):
    """``FakeTelegram`` that holds the first answer message, then refuses answers while down.

    An answer message is one starting with ``prefix``; every other call is the emulator's.
    """

    def __init__(self, prefix: str, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.prefix = prefix
        self.down = True
        self.holding = asyncio.Event()  # set once the first answer message waits
        self._gate = asyncio.Event()
        self._answer: Method = self._methods["sendMessage"]
        self._methods["sendMessage"] = self._gated

    def release(self) -> None:
        """Let the held message on (refused while ``down``)."""
        self._gate.set()

    async def _gated(self, p: dict[str, Any]) -> object:
        if str(p.get("text", "")).startswith(self.prefix):
            if not self.holding.is_set():
                self.holding.set()
                await self._gate.wait()
            if self.down:
                raise ApiError(502, "Bad Gateway")
        answer = self._answer(p)
        return await answer if asyncio.iscoroutine(answer) else answer


async def test_new_while_a_cut_answer_fails_to_go_out_leaves_its_continue_stale(
    tmp_path: Path,
) -> None:
    telegram = AnswerDown(CUT[:20], token=TOKEN)
    async with running_stack(
        tmp_path,
        answer=ANSWER,
        sweep_every=0.2,
        max_answer_tokens=CUT_AT,
        min_answer_tokens=8,
        telegram_server=telegram,
        final_retry_wait=QUICK_RETRY,
    ) as stack:
        texts = stack.veil.catalogs.for_language("en")
        telegram.send_text(USER, "a question")
        async with asyncio.timeout(30):
            await telegram.holding.wait()  # the cut answer's final message, being sent
        telegram.send_text(USER, "/new")  # meanwhile: a fresh conversation
        said = await stack.final_messages(USER, 1)
        assert said[-1]["text"] == texts("new_conversation")
        telegram.release()  # Telegram down past the final tries: the answer to the outbox
        assert await stack.veil.chat.wait_idle(90)
        assert rows(tmp_path / "veil.db", "SELECT ending FROM undelivered") == [("cut",)]
        asked = len(stack.vllm.requests)
        telegram.down = False  # back: the outbox sends the answer and its Continue note
        await wait_until(lambda: rows(tmp_path / "veil.db", "SELECT 1 FROM undelivered") == [])
        sent = await stack.final_messages(USER, 3)
        (answer,) = [m for m in sent if m.get("text") == CUT]
        note = sent[-1]
        assert note["text"] == texts("answer_cut")
        (button,) = note["reply_markup"]["inline_keyboard"][0]
        assert button["text"] == "Continue"
        telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        told = await stack.final_messages(USER, len(sent) + 1)  # the press's reply, or an answer
        assert await stack.veil.chat.wait_idle(30)
    assert answer["reply_to_message"]["text"] == "a question"
    assert told[-1]["text"] == texts("continue_expired")
    assert len(stack.vllm.requests) == asked  # the model was not asked to go on


async def test_new_while_a_cut_answer_streams_leaves_its_continue_stale(tmp_path: Path) -> None:
    # The same, the /new sent while the answer still streams (it is stored in the conversation
    # it was asked in): its Continue must not go on in the fresh one.
    async with running_stack(
        tmp_path, answer=ANSWER, max_answer_tokens=CUT_AT, min_answer_tokens=8
    ) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.vllm.pauses = {CUT_AT // 2}
        stack.telegram.send_text(USER, "a question")
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        stack.telegram.send_text(USER, "/new")
        said = await stack.final_messages(USER, 1)
        assert said[-1]["text"] == texts("new_conversation")
        stack.vllm.pauses = set()
        stack.vllm.resume()
        sent = await stack.final_messages(USER, 3)
        assert await stack.veil.chat.wait_idle(30)
        note = sent[-1]
        assert note["text"] == texts("answer_cut")
        (button,) = note["reply_markup"]["inline_keyboard"][0]
        asked = len(stack.vllm.requests)
        stack.telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        told = await stack.final_messages(USER, 4)
        assert await stack.veil.chat.wait_idle(30)
    assert sent[1]["text"] == CUT
    assert told[-1]["text"] == texts("continue_expired")
    assert len(stack.vllm.requests) == asked  # the model was not asked to go on


async def test_new_while_an_answer_streams_and_then_breaks_off_leaves_no_retry(
    tmp_path: Path,
) -> None:
    # Its Retry would ask the question in the fresh conversation, without the turns it
    # followed on from: the note says it broke off, with no button (as /new lets go of one).
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.vllm.error_mid_stream_after = BROKE_AT
        stack.vllm.pauses = {BROKE_AT // 2}
        stack.telegram.send_text(USER, "a question")
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        stack.telegram.send_text(USER, "/new")
        said = await stack.final_messages(USER, 1)
        assert said[-1]["text"] == texts("new_conversation")
        stack.vllm.pauses = set()
        stack.vllm.resume()
        _new, part, note = await stack.final_messages(USER, 3)
        assert await stack.veil.chat.wait_idle(30)
    assert part["text"] == "".join(split_tokens(ANSWER)[:BROKE_AT])
    assert note["text"].startswith("⚠️ The answer broke off here")
    assert "reply_markup" not in note
