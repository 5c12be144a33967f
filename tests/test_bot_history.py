"""/history without topics: recent conversations by their sealed titles, switched by a button."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tests.botstack import Stack, running_stack
from tests.test_bot_topics import echo, topic_telegram

if TYPE_CHECKING:
    from pathlib import Path

USER = 7351


async def ask(stack: Stack, text: str, count: int) -> None:
    stack.telegram.send_text(USER, text)
    await stack.final_messages(USER, count)


async def titled(stack: Stack, count: int) -> None:
    """Wait until ``count`` of the user's conversations are named."""
    async with asyncio.timeout(10):
        while True:
            conversations = await stack.veil.store.conversations(USER)
            if sum(c.title is not None for c in conversations) >= count:
                return
            await asyncio.sleep(0.02)


def buttons(message: dict[str, Any]) -> list[dict[str, str]]:
    return [row[0] for row in message["reply_markup"]["inline_keyboard"]]


async def test_history_lists_conversations_by_title_and_switches_back(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=echo, conversation_titles=True) as stack:
        stack.telegram.send_text(USER, "/history")
        empty = await stack.reply_text(USER)
        assert empty == "You have no conversations yet. Just write a question."
        await ask(stack, "alpha", 2)
        await titled(stack, 1)
        stack.telegram.send_text(USER, "/new")
        await stack.final_messages(USER, 3)
        await ask(stack, "beta", 4)
        await titled(stack, 2)
        stack.telegram.send_text(USER, "/new")
        await stack.final_messages(USER, 5)
        stack.telegram.send_text(USER, "/new")  # a third, not named yet (the one above: empty)
        await stack.final_messages(USER, 6)

        stack.telegram.send_text(USER, "/history")
        listing = (await stack.final_messages(USER, 7))[-1]
        assert listing["text"].startswith("Your recent conversations")
        labels = [b["text"] for b in buttons(listing)]
        assert labels[0].startswith("✅ Conversation of 20")  # the active one, still unnamed
        assert labels[1:] == ["Title of beta", "Title of alpha"]

        alpha = buttons(listing)[2]["callback_data"]
        stack.telegram.press_button(USER, alpha, message_id=listing["message_id"])
        await stack.telegram.wait_for("editMessageText")
        switched = stack.telegram.sent_messages(USER)[-1]
        assert switched["text"] == (
            "Continuing “Title of alpha”. Your next message goes on from where it stopped."
        )
        # The empty conversation left behind is no longer listed: it has nothing to go back to.
        assert [b["text"] for b in buttons(switched)] == ["Title of beta", "✅ Title of alpha"]

        await ask(stack, "gamma", 8)
        request = [m["content"] for m in stack.vllm.requests[-1]["messages"]]
        assert request[0] == "alpha"
        assert request[-1] == "gamma"
        assert "beta" not in request

        # A button naming someone else's conversation (or one erased) switches nothing.
        stack.telegram.press_button(USER, "conv:999999", message_id=listing["message_id"])
        await stack.telegram.wait_for(
            "editMessageText", lambda call: "no longer there" in str(call.params.get("text"))
        )
        # So does one with an id SQLite cannot hold, or a negative one: the same polite text
        # (the list shows it already: Telegram's "message is not modified" is no failure).
        for forged in ("conv:99999999999999999999", "conv:-7"):
            seen = len(stack.telegram.calls_of("editMessageText"))
            stack.telegram.press_button(USER, forged, message_id=listing["message_id"])
            async with asyncio.timeout(10):
                while len(stack.telegram.calls_of("editMessageText")) == seen:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            edit = stack.telegram.calls_of("editMessageText")[-1]
            assert "no longer there" in str(edit.params.get("text"))
        await ask(stack, "delta", 9)
        request = [m["content"] for m in stack.vllm.requests[-1]["messages"]]
    assert request[0] == "alpha"
    assert request[-1] == "delta"
    texts = [str(m.get("text")) for m in stack.telegram.sent_messages(USER)]
    assert not any(t.startswith("Something went wrong") for t in texts)


async def test_with_topics_history_points_at_the_topics(tmp_path: Path) -> None:
    async with running_stack(tmp_path, telegram_server=topic_telegram()) as stack:
        stack.telegram.send_text(USER, "/history")
        reply = await stack.reply_text(USER)
    assert reply.startswith("Each topic in this chat is its own conversation")


async def test_a_switch_pressed_outside_the_private_chat_changes_nothing(tmp_path: Path) -> None:
    group = -1_001_777_000
    async with running_stack(tmp_path, answer=echo) as stack:
        await ask(stack, "alpha", 1)
        (answer,) = stack.telegram.sent_messages(USER)
        conversation = await stack.veil.store.active_conversation(USER)
        stack.telegram.send_text(USER, "just chatting", chat_id=group)  # the group exists
        # A forged /history button under a group message whose id is the private answer's.
        stack.telegram.press_button(
            USER, f"conv:{conversation}", message_id=answer["message_id"], chat_id=group
        )
        await ask(stack, "beta", 2)  # the press was handled in full before this answer came
        edits = stack.telegram.calls_of("editMessageText")
        kept = stack.telegram.sent_messages(USER)[0]
    assert edits == []  # the private answer with that id is not turned into a /history list
    assert kept["text"] == answer["text"]
