"""A private answer Telegram did not take now, its row kept with the charge: it will follow.

The final message failed past its tries (Telegram down, a flood wait past the session's), the
answer charged and its row in the outbox, which sends it at its next pass; but the user was told
"Telegram did not take my reply just now. Please send that again in a moment." A user who did
asked, and paid for, the same question twice, then got both answers. They are told now that it
is kept and will follow, and it arrives once, charged once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot import streaming
from tests.botstack import running_stack
from tests.group_stop_helpers import closed_holds
from tests.harness import wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 6161
ANSWER = "Kept for you."
KEPT = (
    "Telegram did not take my answer just now. It is kept and will follow within a few"
    " minutes: there is no need to ask again."
)
SEND_AGAIN = "Telegram did not take my reply just now. Please send that again in a moment."


async def test_an_answer_telegram_did_not_take_is_told_kept_and_follows_once(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, answer=ANSWER, final_retry_wait=0.05, sweep_every=0.5
    ) as stack:
        # Two calls a try (the session retries a 5xx once), in each of the final part's tries.
        tries = 2 * streaming.FINAL_TRIES
        stack.telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=tries)
        stack.telegram.send_text(USER, "A question")
        told = await stack.final_messages(USER, 2, within=30)
        await wait_until(lambda: len(stack.telegram.calls_of("sendMessage")) >= tries + 2, 10)
        assert await stack.veil.chat.wait_idle(10)
        holds = await closed_holds(stack, USER)
        asked = len(stack.vllm.requests)
    texts = [m["text"] for m in told]
    assert texts == [KEPT, ANSWER]  # told first, then the outbox's pass sends it
    assert SEND_AGAIN not in texts
    assert asked == 1
    assert [outcome for outcome, *_ in holds] == ["settled"]
