"""A guest summons where Telegram fails before its answer: told in the summons' one answer.

A guest query is answered once, with ``answerGuestQuery``, in a chat the bot is not a member
of: nothing else the bot sends can reach the asker there. A summons handled before the bot
knew its own name (a webhook bot asks Telegram when first needed) met Telegram failing that
call: it was logged, and the asker, waiting in the chat, got no answer at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.test_bot_inline import FAST_EDITS

if TYPE_CHECKING:
    from pathlib import Path

GROUP = -1_009_111_555  # a group the bot is not a member of
ASKER = 9521


async def test_a_summons_telegram_fails_before_its_answer_is_told_in_that_answer(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, webhook=True, **FAST_EDITS) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.fail_next("getMe", status=500, description="Internal Server Error", count=2)
        stack.telegram.guest_message(ASKER, "@veil_test_bot what is a quokka?", chat_id=GROUP)
        told = await stack.telegram.wait_for("answerGuestQuery")
        assert told.answered == "ok"
        assert told.params["result"]["input_message_content"]["message_text"] == texts(
            "error_telegram"
        )
        assert "reply_markup" not in told.params["result"]  # no stop button: nothing runs
        assert stack.vllm.requests == []
        assert (await stack.veil.credit.balance(ASKER)).held == 0
