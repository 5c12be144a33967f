"""Updates this aiogram cannot read (a newer Bot API's) are skipped, never a stalled bot.

aiogram reads a poll's batch whole: one update it could not validate failed the whole poll, and
polling asked for the same batch again and again, so no update after it was ever handled, for
anyone. By webhook such an update was refused with 400, which Telegram sends again and again.
The update here is a message forwarded from an origin whose ``type`` this aiogram does not know,
as Telegram adds kinds of origin (and of reaction, of boost source) in newer Bot API versions.
"""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from aiogram import Bot
from aiogram.types import Update
from pydantic import ValidationError

from bot.pruned import MOST_FAILURES
from bot.telegram import unreadable_update
from common.content import UNREAD
from common.texts import Catalogs
from handlers.reading import words_of
from playground.text import user_entities
from services.groups import Groups
from tests.botstack import TOKEN, WEBHOOK_SECRET, running_stack
from tests.test_bot_webhook import HEADER, post

if TYPE_CHECKING:
    from pathlib import Path

    from aiogram.types import Message

    from tests.botstack import Stack

ANN = 9501
QUOTE = "a forwarded line about the marmalade-periscope-71"


def forwarded_from_a_newer_origin(update_id: int | None = None) -> dict[str, Any]:
    """A private message forwarded from an origin kind that this aiogram does not know."""
    message = {
        "message_id": 41,
        "date": 1_750_000_000,
        "chat": {"id": ANN, "type": "private", "first_name": "Ann"},
        "from": {"id": ANN, "is_bot": False, "first_name": "Ann"},
        "text": QUOTE,
        "forward_origin": {"type": "story_author", "date": 1_749_999_000},
    }
    update: dict[str, Any] = {"message": message}
    return update if update_id is None else {"update_id": update_id} | update


async def test_a_poll_with_an_update_it_cannot_read_goes_on_past_it(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer="Paris.") as stack:
        with (
            structlog.testing.capture_logs() as logs,
            warnings.catch_warnings(record=True) as warned,
        ):
            warnings.simplefilter("always")
            poisoned = stack.telegram.updates.push(forwarded_from_a_newer_origin())
            stack.telegram.send_text(ANN, "What is the capital of France?")
            told, answer = await stack.final_messages(ANN, 2, within=15)
        texts = stack.veil.catalogs.for_language("en")
    assert (told["text"], answer["text"]) == (texts("unread"), "Paris.")
    (skipped,) = [e for e in logs if e["event"] == "telegram.update_unreadable"]
    assert (skipped["update_id"], skipped["via"]) == (poisoned["update_id"], "poll")
    assert "forward_origin" in skipped["error"]
    assert QUOTE not in json.dumps(logs, default=str)
    assert not [w for w in warned if "unknown update type" in str(w.message)]


async def test_a_webhook_update_it_cannot_read_is_taken_and_skipped(tmp_path: Path) -> None:
    async with running_stack(tmp_path, webhook=True) as stack:
        with structlog.testing.capture_logs() as logs:
            sent = forwarded_from_a_newer_origin(update_id=7)
            assert await post(stack, sent, {HEADER: WEBHOOK_SECRET}) == 200
        told = await stack.telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == ANN)
    (skipped,) = [e for e in logs if e["event"] == "telegram.update_unreadable"]
    assert (skipped["update_id"], skipped["via"]) == (7, "webhook")
    assert QUOTE not in json.dumps(logs, default=str)
    assert told.params["text"] == stack.veil.catalogs.for_language("en")("unread")
    assert stack.vllm.requests == []


async def test_a_payment_in_an_update_it_cannot_read_is_still_booked_and_credited(
    tmp_path: Path,
) -> None:
    # Skipped whole, the Stars were paid and never credited: Telegram does not send it again.
    paid = {
        "currency": "XTR",
        "total_amount": 50,
        "invoice_payload": "order-we-never-made",
        "telegram_payment_charge_id": "stxNEWERAPI1",
        "provider_payment_charge_id": "",
    }
    update = forwarded_from_a_newer_origin()
    message = update["message"]
    del message["text"]
    message["successful_payment"] = paid
    async with running_stack(tmp_path, free_tokens_per_day=0) as stack:
        with structlog.testing.capture_logs() as logs:
            stack.telegram.updates.push(update)
            thanks = await stack.telegram.wait_for(
                "sendMessage", lambda c: "Thank you" in str(c.params["text"])
            )
            balance = await stack.veil.credit.balance(ANN)
    assert thanks.params["chat_id"] == ANN
    assert balance.units == 50 * 1_000_000
    (kept,) = [e for e in logs if e["event"] == "telegram.update_unreadable"]
    assert kept["kept"] == "payment"


def replying_to_a_rich_message_with_newer_blocks(update_id: int | None = None) -> dict[str, Any]:
    """A question replying to a rich message with blocks and text of kinds unknown here."""
    rich = {
        "blocks": [
            {"type": "paragraph", "text": "The tide comes in twice a day."},
            {"type": "hologram", "text": "a block of a newer Bot API"},
            {
                "type": "details",
                "summary": "Why",
                "blocks": [
                    {"type": "paragraph", "text": ["The moon", {"type": "sparkle", "x": 1}]},
                ],
            },
        ]
    }
    replied = {
        "message_id": 40,
        "date": 1_750_000_000,
        "chat": {"id": ANN, "type": "private", "first_name": "Ann"},
        "from": {"id": 4242, "is_bot": True, "first_name": "Other", "username": "other_bot"},
        "rich_message": rich,
    }
    message = {
        "message_id": 41,
        "date": 1_750_000_001,
        "chat": {"id": ANN, "type": "private", "first_name": "Ann"},
        "from": {"id": ANN, "is_bot": False, "first_name": "Ann"},
        "text": "Is that so?",
        "reply_to_message": replied,
    }
    update: dict[str, Any] = {"message": message}
    return update if update_id is None else {"update_id": update_id} | update


def asked_of_the_model(stack: Stack) -> str:
    """What the model was last asked, every message's words joined."""
    return "\n".join(str(m["content"]) for m in stack.vllm.requests[-1]["messages"])


async def test_a_question_replying_to_a_rich_message_with_newer_blocks_is_answered(
    tmp_path: Path,
) -> None:
    # The whole update was skipped: a block of a newer kind failed aiogram's reading of it.
    async with running_stack(tmp_path, answer="Yes.") as stack:
        with structlog.testing.capture_logs() as logs:
            sent = stack.telegram.updates.push(replying_to_a_rich_message_with_newer_blocks())
            (answer,) = await stack.final_messages(ANN, 1, within=15)
        asked = asked_of_the_model(stack)
    assert answer["text"] == "Yes."
    assert "Is that so?" in asked
    assert "The tide comes in twice a day." in asked  # what could be read of the reply
    assert "The moon" in asked  # a paragraph less its piece of an unknown kind
    assert "a block of a newer Bot API" not in asked
    (partly,) = [e for e in logs if e["event"] == "telegram.update_read_in_part"]
    assert (partly["update_id"], partly["via"], partly["skipped"]) == (sent["update_id"], "poll", 2)
    assert not [e for e in logs if e["event"] == "telegram.update_unreadable"]
    assert "tide" not in json.dumps(logs, default=str)


async def test_a_webhook_update_with_newer_rich_blocks_is_read_in_part(tmp_path: Path) -> None:
    async with running_stack(tmp_path, webhook=True, answer="Yes.") as stack:
        with structlog.testing.capture_logs() as logs:
            sent = replying_to_a_rich_message_with_newer_blocks(update_id=8)
            assert await post(stack, sent, {HEADER: WEBHOOK_SECRET}) == 200
            (answer,) = await stack.final_messages(ANN, 1, within=15)
    assert answer["text"] == "Yes."
    assert "The tide comes in twice a day." in asked_of_the_model(stack)
    (partly,) = [e for e in logs if e["event"] == "telegram.update_read_in_part"]
    assert (partly["update_id"], partly["via"]) == (8, "webhook")


def test_sibling_blocks_of_newer_kinds_each_leave_and_the_rest_stay_in_order() -> None:
    update = replying_to_a_rich_message_with_newer_blocks(update_id=9)
    blocks = [
        {"type": "hologram"},
        {"type": "paragraph", "text": "first"},
        {"type": "hologram"},
        {"type": "list", "items": [{"label": "1.", "blocks": [{"type": "hologram"}]}]},
        {"type": "paragraph", "text": ["second", {"type": "sparkle"}, " half"]},
    ]
    update["message"]["reply_to_message"]["rich_message"]["blocks"] = blocks
    with pytest.raises(ValidationError) as failed:
        Update.model_validate(update)
    with structlog.testing.capture_logs() as logs:
        read = unreadable_update(update, failed.value, Bot(TOKEN), "poll")
    assert read is not None
    assert read.message is not None
    assert read.message.reply_to_message is not None
    assert words_of(read.message.reply_to_message, 0, Catalogs()) == "first\n\n1.\n\nsecond half"
    (partly,) = [e for e in logs if e["event"] == "telegram.update_read_in_part"]
    assert partly["skipped"] == 4


async def test_a_question_replying_to_a_message_with_a_newer_origin_is_answered(
    tmp_path: Path,
) -> None:
    # A forward origin of a newer kind in the message replied to skipped the whole question.
    replied = forwarded_from_a_newer_origin()["message"] | {"message_id": 40}
    question = forwarded_from_a_newer_origin()["message"] | {"text": "Is that so?"}
    del question["forward_origin"]
    question["reply_to_message"] = replied
    async with running_stack(tmp_path, answer="Yes.") as stack:
        with structlog.testing.capture_logs() as logs:
            sent = stack.telegram.updates.push({"message": question})
            (answer,) = await stack.final_messages(ANN, 1, within=15)
        asked = asked_of_the_model(stack)
    assert answer["text"] == "Yes."
    assert f"> {QUOTE}" in asked  # what could be read of the message replied to
    assert "Is that so?" in asked
    (partly,) = [e for e in logs if e["event"] == "telegram.update_read_in_part"]
    assert (partly["update_id"], partly["skipped"]) == (sent["update_id"], 1)
    assert QUOTE not in json.dumps(logs, default=str)


def test_an_update_of_thousands_of_newer_pieces_of_text_is_skipped_without_holding_the_loop() -> (
    None
):
    # 2,000 pieces of text of a newer kind (6,000 characters, within Telegram's 32,768): pydantic
    # blamed each union member for each, ~190,000 failures, each walked down the update, and
    # the innermost found by comparing every spot with every other: seconds of the event loop,
    # every chat's, for one update (tens of seconds at Telegram's limit). Counted in calls of
    # Python functions, not in time.
    update = replying_to_a_rich_message_with_newer_blocks(update_id=10)
    newer = [{"type": "sparkle", "text": "x"} for _ in range(50)]
    blocks = [{"type": "paragraph", "text": ["a", *newer]} for _ in range(40)]
    update["message"]["reply_to_message"]["rich_message"]["blocks"] = blocks
    with pytest.raises(ValidationError) as failed:
        Update.model_validate(update)
    assert failed.value.error_count() > MOST_FAILURES
    calls = 0

    def count(_frame: object, event: str, _arg: object) -> None:
        nonlocal calls
        calls += event == "call"

    with structlog.testing.capture_logs() as logs:
        sys.setprofile(count)
        try:
            read = unreadable_update(update, failed.value, Bot(TOKEN), "poll")
        finally:
            sys.setprofile(None)
    assert calls < 20_000
    assert read is not None
    assert read.update_id == 10
    assert envelope_alone(read.message)  # skipped, as any update it cannot read
    assert [e["event"] for e in logs] == ["telegram.update_unreadable"]


def test_a_reply_to_another_chat_s_photo_of_a_newer_origin_is_never_asked_blind() -> None:
    # The external reply's origin, of a newer kind, was cut; an external reply must have one,
    # so the whole of it went, the photo with it: "What is this?" was then a question replying
    # to nothing, asked of the model blind (and charged) where a reply to a photo is refused.
    photo = [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}]
    update = replying_to_a_rich_message_with_newer_blocks(update_id=11)
    message = update["message"]
    del message["reply_to_message"]
    message["text"] = "What is this?"
    message["external_reply"] = {"origin": {"type": "hologram", "date": 1}, "photo": photo}
    with pytest.raises(ValidationError) as failed:
        Update.model_validate(update)
    with structlog.testing.capture_logs() as logs:
        read = unreadable_update(update, failed.value, Bot(TOKEN), "poll")
    assert read is not None
    assert read.update_id == 11
    assert envelope_alone(read.message)  # skipped, as before it was read in part
    assert [e["event"] for e in logs] == ["telegram.update_unreadable"]


def test_a_reply_to_paid_media_of_a_newer_kind_is_never_asked_blind() -> None:
    # The paid media of a kind this aiogram does not know was cut from the message replied to,
    # which then read as a message of nothing: "What is this?" went to the model alone.
    update = replying_to_a_rich_message_with_newer_blocks(update_id=12)
    replied = update["message"]["reply_to_message"]
    del replied["rich_message"]
    replied["paid_media"] = {"star_count": 5, "paid_media": [{"type": "hologram"}]}
    update["message"]["text"] = "What is this?"
    with pytest.raises(ValidationError) as failed:
        Update.model_validate(update)
    with structlog.testing.capture_logs() as logs:
        read = unreadable_update(update, failed.value, Bot(TOKEN), "poll")
    assert read is not None
    assert read.update_id == 12
    assert envelope_alone(read.message)  # skipped, as before it was read in part
    assert [e["event"] for e in logs] == ["telegram.update_unreadable"]


def envelope_alone(message: Message | None) -> bool:
    """Whether ``message`` stands for one not read: marked so, with nothing in it to ask."""
    return (
        message is not None
        and message.model_extra == {UNREAD: True}
        and (message.text, message.caption, message.reply_to_message) == (None, None, None)
    )


GROUP = -1_001_234_501
FRIENDS = -1_009_876_501
BOB = 9502
NEWER_PAID_MEDIA = {
    "message_id": 1,
    "date": 1_750_000_000,
    "chat": {"id": GROUP, "type": "supergroup", "title": "Friends"},
    "from": {"id": BOB, "is_bot": False, "first_name": "Bob"},
    "paid_media": {"star_count": 5, "paid_media": [{"type": "hologram"}]},
}


def stored(stack: Stack, chat_id: int, user_id: int, text: str) -> dict[str, Any]:
    """A message of ``user_id``'s that the fake Telegram keeps (so Veil may reply to it)."""
    state = stack.telegram.state
    user = state.register_user(user_id, "Ann" if user_id == ANN else "Bob", "en")
    return state.store_message(state.chats[chat_id], user, text=text, entities=user_entities(text))


async def test_a_question_in_the_private_chat_that_cannot_be_read_is_told_so(
    tmp_path: Path,
) -> None:
    # It was skipped: Ann waited for an answer that never came, and was never told why.
    async with running_stack(tmp_path) as stack:
        with structlog.testing.capture_logs() as logs:
            stack.telegram.updates.push(forwarded_from_a_newer_origin())
            told = await stack.telegram.wait_for(
                "sendMessage", lambda c: c.params["chat_id"] == ANN
            )
        texts = stack.veil.catalogs.for_language("en")
    assert told.params["text"] == texts("unread")
    assert stack.vllm.requests == []
    (skipped,) = [e for e in logs if e["event"] == "telegram.update_unreadable"]
    assert skipped["kept"] == "envelope"
    assert QUOTE not in json.dumps(logs, default=str)


async def test_a_question_of_too_many_newer_parts_is_told_so_too(tmp_path: Path) -> None:
    update = replying_to_a_rich_message_with_newer_blocks()
    newer = [{"type": "sparkle", "text": "x"} for _ in range(50)]
    blocks = [{"type": "paragraph", "text": ["a", *newer]} for _ in range(40)]
    update["message"]["reply_to_message"]["rich_message"]["blocks"] = blocks
    async with running_stack(tmp_path) as stack:
        stack.telegram.updates.push(update)
        told = await stack.telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == ANN)
        texts = stack.veil.catalogs.for_language("en")
    assert told.params["text"] == texts("unread")
    assert stack.vllm.requests == []


async def test_a_group_question_to_veil_that_cannot_be_read_is_told_to_its_asker_alone(
    tmp_path: Path,
) -> None:
    # A mention of Veil replying to paid media of a newer kind was skipped, nobody told; a
    # message not meant for Veil is left alone as before.
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_text(BOB, "hello all", chat_id=GROUP)  # the group, Veil in it
        stack.telegram.send_text(ANN, "hi Bob", chat_id=GROUP)  # Ann a member of it
        not_for_veil = stored(stack, GROUP, BOB, "what is this?")
        stack.telegram.updates.push(
            {"message": not_for_veil | {"reply_to_message": NEWER_PAID_MEDIA}}
        )
        question = stored(stack, GROUP, ANN, "@veil_test_bot what is this?")
        stack.telegram.updates.push({"message": question | {"reply_to_message": NEWER_PAID_MEDIA}})
        for_another = stored(stack, GROUP, BOB, "/ask@other_bot what is this?")
        stack.telegram.updates.push(
            {"message": for_another | {"reply_to_message": NEWER_PAID_MEDIA}}
        )
        asked = stored(stack, GROUP, BOB, "/ask what is this?")
        stack.telegram.updates.push({"message": asked | {"reply_to_message": NEWER_PAID_MEDIA}})
        async with asyncio.timeout(10):
            while not all(stack.telegram.ephemeral_messages(GROUP, m) for m in (ANN, BOB)):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert await stack.veil.chat.wait_idle(10)
        texts = stack.veil.catalogs.for_language("en")
        (told,) = stack.telegram.ephemeral_messages(GROUP, ANN)
        (told_bob,) = stack.telegram.ephemeral_messages(GROUP, BOB)  # for his /ask alone
        assert stack.telegram.sent_messages(GROUP) == []
    assert told["text"] == told_bob["text"] == texts("unread")
    assert stack.vllm.requests == []


async def test_a_guest_summons_that_cannot_be_read_is_answered_with_the_notice(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        said = stack.telegram.user.post_text(BOB, "look", chat_id=FRIENDS)  # a chat without Veil
        summons = stored(stack, FRIENDS, ANN, "@veil_test_bot what is this?")
        query = stack.telegram.state.new_guest_query(ANN, FRIENDS, summons["message_id"])
        replied = NEWER_PAID_MEDIA | {"message_id": said, "chat": summons["chat"]}
        stack.telegram.updates.push(
            {"guest_message": summons | {"guest_query_id": query, "reply_to_message": replied}}
        )
        answered = await stack.telegram.wait_for("answerGuestQuery")
        texts = stack.veil.catalogs.for_language("en")
    assert answered.answered == "ok"
    result = answered.params["result"]
    assert result["input_message_content"]["message_text"] == texts("unread")
    assert stack.vllm.requests == []


async def test_a_forwarded_guest_summons_that_cannot_be_read_is_answered_with_the_notice(
    tmp_path: Path,
) -> None:
    # A forward in a group stood for nothing (never addressed to Veil there), and a summons in
    # a group was taken for one: the summons of a newer origin went unanswered, its query left
    # to expire, where a readable forwarded summons is answered with a notice.
    async with running_stack(tmp_path) as stack:
        stack.telegram.user.post_text(BOB, "look", chat_id=FRIENDS)  # a chat without Veil
        summons = stored(stack, FRIENDS, ANN, "@veil_test_bot what is this?")
        assert summons["chat"]["type"] in {"group", "supergroup"}
        query = stack.telegram.state.new_guest_query(ANN, FRIENDS, summons["message_id"])
        origin = {"type": "story_author", "date": 1_749_999_000}  # a kind this aiogram lacks
        stack.telegram.updates.push(
            {"guest_message": summons | {"guest_query_id": query, "forward_origin": origin}}
        )
        answered = await stack.telegram.wait_for("answerGuestQuery")
        texts = stack.veil.catalogs.for_language("en")
    assert answered.answered == "ok"
    result = answered.params["result"]
    assert result["input_message_content"]["message_text"] == texts("unread")
    assert stack.vllm.requests == []


@pytest.mark.parametrize("answers", [True, False], ids=["answers on", "answers off"])
async def test_a_group_that_turned_answers_off_is_not_logged_as_told(
    tmp_path: Path,
    answers: bool,  # noqa: FBT001 -- pytest's parameter
) -> None:
    # ``unread.told`` was logged before the group's settings were read: in a group that turned
    # answers off the operator read that the asker was told, and nobody was.
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_text(ANN, "hi all", chat_id=GROUP)  # the group, Veil in it
        await Groups(stack.veil.store).set(GROUP, "answers", on=answers)
        question = stored(stack, GROUP, ANN, "@veil_test_bot what is this?")
        raw = {"update_id": 5, "message": question | {"reply_to_message": NEWER_PAID_MEDIA}}
        with pytest.raises(ValidationError) as failed:
            Update.model_validate(raw, context={"bot": stack.veil.bot})
        stand_in = unreadable_update(raw, failed.value, stack.veil.bot, "poll")
        assert stand_in is not None
        with structlog.testing.capture_logs() as logs:
            await stack.veil.dispatcher.feed_update(stack.veil.bot, stand_in)  # handled when back
        told = stack.telegram.ephemeral_messages(GROUP, ANN)
    logged = [e["where"] for e in logs if e["event"] == "unread.told"]
    assert (len(told), logged) == ((1, ["group"]) if answers else (0, []))


async def test_an_unread_guest_summons_delivered_again_is_answered_once(tmp_path: Path) -> None:
    # A readable summons delivered again (the same update) is answered once; one that could
    # not be read was answered again each time, and ``unread.told`` logged again.
    async with running_stack(tmp_path) as stack:
        said = stack.telegram.user.post_text(BOB, "look", chat_id=FRIENDS)  # a chat without Veil
        summons = stored(stack, FRIENDS, ANN, "@veil_test_bot what is this?")
        query = stack.telegram.state.new_guest_query(ANN, FRIENDS, summons["message_id"])
        replied = NEWER_PAID_MEDIA | {"message_id": said, "chat": summons["chat"]}
        raw = {
            "update_id": 6,
            "guest_message": summons | {"guest_query_id": query, "reply_to_message": replied},
        }
        with pytest.raises(ValidationError) as failed:
            Update.model_validate(raw, context={"bot": stack.veil.bot})
        with structlog.testing.capture_logs() as logs:
            for _ in range(2):  # handled when ``feed_update`` is back
                stand_in = unreadable_update(raw, failed.value, stack.veil.bot, "poll")
                assert stand_in is not None
                await stack.veil.dispatcher.feed_update(stack.veil.bot, stand_in)
        answered = stack.telegram.calls_of("answerGuestQuery")
    assert [call.answered for call in answered] == ["ok"]
    assert [e["where"] for e in logs if e["event"] == "unread.told"] == ["guest"]


def edited(message: dict[str, Any]) -> dict[str, Any]:
    """An ``edited_message`` update of ``message``, edited a minute after it was sent."""
    return {"edited_message": message | {"edit_date": message["date"] + 60}}


async def test_an_edit_in_the_private_chat_that_cannot_be_read_is_told_as_any_edit(
    tmp_path: Path,
) -> None:
    # An edit that could not be read was skipped, where any other edit is told it was not read
    # (Veil answers each message as sent): Ann waited for an answer to her edit, never told.
    photo = [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}]
    newer = {"origin": {"type": "hologram", "date": 1}, "photo": photo}
    async with running_stack(tmp_path) as stack:
        stack.telegram.state.register_chat(ANN, "private", "Ann")  # Ann's chat with Veil
        question = stored(stack, ANN, ANN, "what is this?")
        with structlog.testing.capture_logs() as logs:
            stack.telegram.updates.push(edited(question | {"external_reply": newer}))
            told = await stack.telegram.wait_for(
                "sendMessage", lambda c: c.params["chat_id"] == ANN
            )
        texts = stack.veil.catalogs.for_language("en")
    assert told.params["text"] == texts("edited")
    assert stack.vllm.requests == []
    (skipped,) = [e for e in logs if e["event"] == "telegram.update_unreadable"]
    assert skipped["kept"] == "envelope"


async def test_a_group_edit_to_veil_that_cannot_be_read_is_told_to_its_asker_alone(
    tmp_path: Path,
) -> None:
    # Ann's edited mention of Veil, replying to paid media of a newer kind, got no word; Bob's
    # edit not meant for Veil is left alone, as a readable one is.
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_text(BOB, "hello all", chat_id=GROUP)  # the group, Veil in it
        stack.telegram.send_text(ANN, "hi Bob", chat_id=GROUP)  # Ann a member of it
        not_for_veil = stored(stack, GROUP, BOB, "what is this?")
        stack.telegram.updates.push(edited(not_for_veil | {"reply_to_message": NEWER_PAID_MEDIA}))
        question = stored(stack, GROUP, ANN, "@veil_test_bot what is this?")
        stack.telegram.updates.push(edited(question | {"reply_to_message": NEWER_PAID_MEDIA}))
        async with asyncio.timeout(10):
            while not stack.telegram.ephemeral_messages(GROUP, ANN):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        texts = stack.veil.catalogs.for_language("en")
        (told,) = stack.telegram.ephemeral_messages(GROUP, ANN)
        assert stack.telegram.ephemeral_messages(GROUP, BOB) == []
        assert stack.telegram.sent_messages(GROUP) == []
    assert told["text"] == texts("edited")
    assert stack.vllm.requests == []
