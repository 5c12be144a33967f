"""Veil's inline mode used in Veil's own private chat: the answer posted there is no question.

Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``. Telegram sends a
bot every message of its private chats, the one a user posts there through the bot's inline
mode too (``via_bot``); the fake posts it but sends it only in groups, so the test sends it.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

USER = 9831
QUESTION = "What is the tide?"
UNSUPPORTED = (
    "I can only read text and text files for now. Photos, voice and video messages, stickers"
    " and the like are not supported: please describe it in words."
)


async def test_an_inline_answer_posted_in_veils_own_chat_is_not_asked_again(
    tmp_path: Path,
) -> None:
    # The posted placeholder ("❓ What is the tide? ⏳ Veil is writing…") came in as a question:
    # while the inline answer streamed, the user was told "I'm still writing the previous
    # answer, so I did not start on this one"; after it, it would be asked and charged again.
    # Veil's own edits of that message, as Telegram may send them, were told "I did not read
    # this edit".
    async with running_stack(tmp_path) as stack:
        stack.telegram.inline_query(USER, QUESTION)
        answered = await stack.telegram.wait_for("answerInlineQuery")
        result = answered.params["results"][0]
        inline_id = f"inline-{result['id']}"
        stack.telegram.choose_inline_result(
            USER, result["id"], QUESTION, inline_message_id=inline_id, chat_id=USER
        )
        placed = stack.telegram.state.placed_message(inline_id)
        assert placed is not None
        posted = {key: value for key, value in placed.items() if value is not None}
        stack.telegram.updates.push({"message": copy.deepcopy(posted)})
        await stack.telegram.wait_for(
            "editMessageText", lambda call: call.params.get("inline_message_id") == inline_id
        )
        await stack.veil.chat.wait_idle(10)
        edited = copy.deepcopy(posted) | {"text": placed["text"], "edit_date": 1_700_000_005}
        stack.telegram.updates.push({"edited_message": edited})
        stack.telegram.send_message_of(USER, "sticker")  # after them: its note tells they are done
        await stack.telegram.wait_for(
            "sendMessage", lambda call: call.params["text"] == UNSUPPORTED
        )
        sent = stack.telegram.sent_messages(USER)
    assert [message["text"] for message in sent] == [UNSUPPORTED]
    assert len(stack.vllm.requests) == 1  # the inline question alone
