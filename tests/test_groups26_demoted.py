"""A group answer whose edits Telegram refuses for want of rights (the bot demoted, muted).

An admin demotes or restricts the bot mid-answer: Telegram refuses its edits with a 400 that
says it has no rights to write there. The sink took that for a passing failure: each progress
edit was refused, the model wrote the whole answer nobody could see, and the asker was charged
for all of it. Now such a refusal is the message gone, as a deleted reply is: the answer stops
there, charged as a stop for what streamed before it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.botstack import running_stack
from tests.group_stop_helpers import LONG, closed_holds, held_model, streaming
from tests.test_bot_groups import ANN, FAST, GROUP, QUESTION

if TYPE_CHECKING:
    from pathlib import Path

# As Telegram words them (the Bot API's descriptions of a chat the bot may not write in).
NO_RIGHTS = [
    "Bad Request: not enough rights to send text messages to the chat",
    "Bad Request: have no rights to send a message",
    "Bad Request: CHAT_WRITE_FORBIDDEN",
]


@pytest.mark.parametrize("description", NO_RIGHTS)
async def test_edits_refused_for_want_of_rights_stop_the_answer(
    tmp_path: Path, description: str
) -> None:
    async with running_stack(tmp_path, model_server=held_model(), **FAST) as stack:
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await streaming(stack)
        stack.telegram.fail_next("editMessageText", status=400, description=description, count=99)
        stack.vllm.token_delay = 0.05  # the rest comes slowly: a progress edit is due meanwhile
        stack.vllm.pauses = set()
        stack.vllm.resume()
        assert await stack.veil.chat.wait_idle(20)
        ((_, status, completion, _),) = await closed_holds(stack, ANN)
        assert status == "stopped"  # not written whole for nobody, and charged so
        assert completion < len(LONG.split())
