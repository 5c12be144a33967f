"""A flood wait Telegram sets on a membership look-up is kept for the look-ups after it.

Since groups23 a look-up of whether a queued question's asker stayed goes to Telegram once,
past the session's retries (``at_once``): a 429 is answered at once and the question answered.
But the next queued question asked again at once, within the wait Telegram had just set, and
so did each after it: calls in a flood wait make the wait longer, and the retries that honour
it for every other call were what ``at_once`` went past. Now no look-up is made until the wait
is over: the questions meanwhile are answered as when Telegram does not say.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_groups import ANSWER, FAST, GROUP, LAST, answered_last, final_reply
from tests.test_hostile22a_gone import bob_asks_while_ann_is_answered, to_bob

if TYPE_CHECKING:
    from pathlib import Path

DAVE = 9204
DAVES = "@veil_test_bot and what about the lighthouse?"


async def test_no_look_up_is_made_within_the_flood_wait_telegram_set(tmp_path: Path) -> None:
    flood = "Too Many Requests: retry after 50"
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        kit = stack.veil.dispatcher["kit"]
        with structlog.testing.capture_logs() as logs:
            held = await bob_asks_while_ann_is_answered(stack)
            stack.telegram.send_text(DAVE, DAVES, chat_id=GROUP)  # waits behind Bob
            await wait_until(lambda: (GROUP, DAVE) in kit.asking)
            # Bob's turn's look-up meets the flood wait; Dave's, after him, must not be made.
            stack.telegram.fail_next("getChatMember", status=429, description=flood, retry_after=50)
            stack.vllm.chat_hold = None
            held.set()
            await final_reply(stack, 3, within=30)  # Ann's, Bob's and Dave's
            await answered_last(stack)  # Carol's, asked last: nothing else is on its way
        looked_up = [
            call.params.get("user_id") for call in stack.telegram.calls_of("getChatMember")
        ]
        answers = to_bob(stack)
        to_dave = [
            m["text"]
            for m in stack.telegram.sent_messages(GROUP)
            if (m.get("reply_to_message") or {}).get("text") == DAVES
        ]
        to_carol = [
            m["text"]
            for m in stack.telegram.sent_messages(GROUP)
            if (m.get("reply_to_message") or {}).get("text") == LAST
        ]
    unknown = [e["error"] for e in logs if e["event"] == "groups.asker_unknown"]
    assert answers == [ANSWER]
    assert to_dave == [ANSWER]
    assert to_carol == [ANSWER]
    assert len(looked_up) == 1, f"looked up within the flood wait: {looked_up}"
    assert unknown == ["TelegramRetryAfter", "TelegramRetryAfter"]  # Bob's, then Dave's
