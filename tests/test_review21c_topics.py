"""Who asks in a closed forum topic, and what becomes of a question asked before it closed.

Telegram takes a message in a closed topic from those with the ``can_manage_topics`` right
alone (its creator, or an admin given it), a user's client as a bot. The fake Telegram let any
member write there, so a test could have Veil answer a member's question no client could send.
A member's question sent while the topic was open, and still waiting for the group's turn when
an admin closes it, is answered there by Veil with the right; without it, Telegram refuses the
placeholder: nothing is asked or charged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import structlog

from tests.botstack import running_stack
from tests.fakes.telegram import FakeTelegram
from tests.harness import wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

GROUP = -1_001_555_000_311
ANN, BOB, CAROL, DAN = 9811, 9812, 9813, 9814
TOPIC = 43
FAST: dict[str, Any] = {"edit_interval": 0.2, "group_messages_per_minute": 900}
LONG = " ".join(f"word{n}" for n in range(300))
ANSWER = "Quartz is silicon dioxide."


async def test_only_those_who_manage_topics_write_in_a_closed_one() -> None:
    async with FakeTelegram() as fake:
        assert fake.send_text(ANN, "@veil_test_bot open", chat_id=GROUP, thread_id=TOPIC)
        fake.close_topic(BOB, GROUP, TOPIC)  # an admin with the right
        fake.state.set_member(GROUP, CAROL, "administrator", can_manage_topics=False)
        for user in (ANN, CAROL):
            with pytest.raises(ValueError, match="closed"):
                fake.send_text(user, "@veil_test_bot shut", chat_id=GROUP, thread_id=TOPIC)
        assert fake.send_text(BOB, "@veil_test_bot admin", chat_id=GROUP, thread_id=TOPIC)
        fake.state.set_member(GROUP, DAN, "creator")
        assert fake.send_text(DAN, "@veil_test_bot creator", chat_id=GROUP, thread_id=TOPIC)
        assert fake.send_text(ANN, "@veil_test_bot general", chat_id=GROUP)  # not the topic
        fake.close_topic(BOB, GROUP, TOPIC, closed=False)
        assert fake.send_text(ANN, "@veil_test_bot reopened", chat_id=GROUP, thread_id=TOPIC)
        said = [str(m["text"]) for m in fake.state.chat_messages(GROUP) if m.get("text")]
    assert [text.removeprefix("@veil_test_bot ") for text in said] == [
        "open",
        "admin",
        "creator",
        "general",
        "reopened",
    ]


def answer_to(request: dict[str, Any]) -> str:
    """Bob's question gets a long answer, which holds the group's turn; Ann's a short one."""
    return LONG if "long" in request["messages"][-1]["content"] else ANSWER


def final_to(stack: Stack, question: str) -> dict[str, Any] | None:
    """Veil's final reply to ``question``, if there is one yet."""
    for message in stack.telegram.sent_messages(GROUP):
        asked = (message.get("reply_to_message") or {}).get("text")
        if asked == question and not message.get("reply_markup"):
            return message
    return None


@pytest.mark.parametrize("right", [True, False], ids=["with the right", "without"])
async def test_a_member_s_question_waiting_when_its_topic_closes(
    tmp_path: Path,
    right: bool,  # noqa: FBT001 -- pytest's parameter
) -> None:
    question = "@veil_test_bot what is quartz?"
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, answer=answer_to, token_delay=0.01, **FAST) as stack:
            me = stack.telegram.state.bot_user["id"]
            stack.telegram.state.set_member(GROUP, me, "administrator", can_manage_topics=right)
            stack.telegram.send_text(BOB, "@veil_test_bot a long one", chat_id=GROUP)
            await stack.telegram.wait_for(
                "editMessageText", lambda c: "word" in str(c.params.get("text", ""))
            )
            stack.telegram.send_text(ANN, question, chat_id=GROUP, thread_id=TOPIC)
            stack.telegram.close_topic(CAROL, GROUP, TOPIC)  # Bob's answer still streams
            if right:
                await wait_until(lambda: final_to(stack, question) is not None, 30)
            else:
                await wait_until(lambda: "groups.topic_closed" in [e["event"] for e in logs], 30)
            assert await stack.veil.chat.wait_idle(30)
            asked = [r["messages"][-1]["content"] for r in stack.vllm.requests]
            balance = await stack.veil.credit.balance(ANN)
            answer = final_to(stack, question)
            assert final_to(stack, "@veil_test_bot a long one") is not None
    assert balance.held == 0
    if right:
        assert answer is not None
        assert (answer["text"], answer["message_thread_id"]) == (ANSWER, TOPIC)
        assert asked == ["a long one", "what is quartz?"]
        assert balance.free_tokens_left < 1_000_000  # answered, charged
    else:
        assert answer is None
        assert asked == ["a long one"]
        assert balance.free_tokens_left == 1_000_000  # nothing asked, nothing charged
        assert [e["event"] for e in logs].count("groups.topic_closed") == 1


async def test_closing_a_topic_keeps_the_closer_s_rights_as_they_were() -> None:
    # Closing made its user an administrator with every right: the group's creator was
    # demoted, and an admin refused the topics right was given it, as no app does.
    async with FakeTelegram() as fake:
        fake.state.set_member(GROUP, DAN, "creator")
        fake.close_topic(DAN, GROUP, TOPIC)
        assert fake.state.member_status(GROUP, DAN) == "creator"
        fake.state.set_member(GROUP, CAROL, "administrator", can_manage_topics=False)
        with pytest.raises(ValueError, match="may not manage"):
            fake.close_topic(CAROL, GROUP, TOPIC, closed=False)
        assert (GROUP, TOPIC) in fake.state.closed_topics
        assert not fake.state.manages_topics(GROUP, CAROL)
        fake.close_topic(BOB, GROUP, TOPIC, closed=False)  # a member: made an admin, as before
        assert fake.state.manages_topics(GROUP, BOB)
        assert (GROUP, TOPIC) not in fake.state.closed_topics
