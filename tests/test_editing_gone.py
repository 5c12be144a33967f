"""The edit sink when its message is gone: one refused edit stops it, and nothing more is sent.

Telegram answers an edit of a deleted message "message to edit not found" (an inline one:
MESSAGE_ID_INVALID), and one into a group the bot was removed from with 403. The sink then
calls its ``gone`` once (the handlers stop the answer with it) and sends nothing more: no
progress edit, no final edit, no note, no notice.
"""

from __future__ import annotations

from bot.editing import EditSink, Look
from bot.pacing import Pace, Pacer, Place
from tests.harness import wait_until
from tests.test_bot_drafts import telegram_and_bot

CHAT = 7003


async def test_a_deleted_message_stops_the_sink_after_one_refused_edit() -> None:
    async with telegram_and_bot() as (telegram, bot):
        sent = await bot.send_message(CHAT, "…")
        calls: list[str] = []
        place = Place(chat_id=CHAT, message_id=sent.message_id)
        look = Look(gone=lambda: calls.append("gone"))
        sink = EditSink(bot, place, Pacer(6000), Pace(interval=0.05, min_growth=5), look)
        await sink.begin()
        await sink.append("the first words")
        await wait_until(lambda: len(telegram.calls_of("editMessageText")) == 1, within=5)
        await bot.delete_message(CHAT, sent.message_id)  # as a user or admin would
        await sink.append(" and the next ones")
        await wait_until(lambda: calls == ["gone"], within=5)
        await sink.append(" and more that nobody sees")
        await sink.complete("the first words and the next ones and more that nobody sees")
        await sink.note("a note")
        await sink.say("a notice")
        assert calls == ["gone"]
        first, refused = telegram.calls_of("editMessageText")
        assert first.answered == "ok"
        assert refused.answered == "Bad Request: message to edit not found"
        assert not await sink.finished()
