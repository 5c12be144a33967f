"""fix30c: an inline bot's result posted where Veil is not a member is no summons of Veil's.

review29c stopped groups answering a member's post of another bot's inline result (``via_bot``)
that names Veil: its words are that bot's, and the member, who asked that bot, was charged.
A guest summons was not checked so: the same post in a chat without Veil was answered through
``answerGuestQuery``, the other bot's words asked of the model and charged to the member. It
now gets a notice saying whose words those are, as a forwarded summons does. Veil's own inline
answer naming Veil (its question shown above it) was answered once more the same way, and
charged twice: it is answered already, as the chosen result, and now left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import structlog

from playground.text import user_entities
from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_groups import ANN, ANSWER, FAST, QUESTION

if TYPE_CHECKING:
    from pathlib import Path

FRIENDS = -1_009_876_547  # a chat Veil is not in: a message naming it there summons it
OTHER_BOT = {"id": 777, "is_bot": True, "first_name": "Veil Two", "username": "veil2_bot"}


@pytest.mark.parametrize("whose", ["another", "own"])
async def test_an_inline_result_naming_veil_in_a_chat_without_it_is_not_asked(
    tmp_path: Path, whose: str
) -> None:
    text = f"❓ what is @veil_test_bot {QUESTION}\n\n⏳ Veil is writing…"
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
            telegram = stack.telegram
            telegram.user.post_text(ANN, "hi", chat_id=FRIENDS)
            via: dict[str, Any] = OTHER_BOT if whose == "another" else telegram.state.bot_user
            content: dict[str, object] = {"text": text, "entities": user_entities(text)}
            content["via_bot"] = via
            # The fake has no user action for a message via a bot in a chat without Veil: its
            # own, with the field. A message there that names Veil summons it as a guest.
            routing = {"chat_id": FRIENDS, "chat_type": None, "first_name": "Ann"}
            assert telegram.user._user_message(ANN, routing, content)
            # Its one answer (a notice, or before the fix the placeholder of an answer), or for
            # Veil's own the log line of one left alone (the handler returns as it logs it).
            await wait_until(
                lambda: (
                    bool(telegram.calls_of("answerGuestQuery"))
                    or (whose == "own" and any(e["event"] == "inline.guest_via_bot" for e in logs))
                )
            )
            answers = [call.params["result"] for call in telegram.calls_of("answerGuestQuery")]
            if whose == "another":
                (posted,) = telegram.state.inline_messages.values()
                assert posted["text"].startswith("This is another bot's inline result")
                assert not posted.get("reply_markup")  # no stop button: nothing runs
            else:
                assert answers == []
            assert stack.vllm.requests == []
    (event,) = [e for e in logs if e["event"] == "inline.guest_via_bot"]
    assert event["own"] is (whose == "own")
