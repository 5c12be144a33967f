"""Notices to one member take at most half of a group's slots: answers are never queued behind them.

Every call into a group waits for its pacer, first come first served. Notices (the usage line,
``/help@veil``, ``/terms``, "wait for your answer") queued there one a message: members sending
commands, one each or one after another, put their notices ahead of the placeholder and final
edit of an answer asked a moment later, which waited for all of them (and a progress edit,
which goes only when the pacer is free, for all of them too). Now a notice first waits for a
slot of the group's notice pacer, at half the group's pace, so one notice at most stands in the
group's queue at a time: an answer's call waits for one notice, not for all.
"""

from __future__ import annotations

import asyncio

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.editors import Editors
from bot.pacing import Pace
from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram

GROUP = -1_001_234_567
MEMBERS = range(101, 107)  # six members, each sending a command Veil answers alone
PLACEHOLDER = "⏳ …"


async def test_an_answers_placeholder_waits_for_one_notice_not_for_all_queued() -> None:
    async with FakeTelegram(token=TOKEN) as telegram:
        for user_id in MEMBERS:
            telegram.send_text(user_id, "/help@veil_test_bot", chat_id=GROUP)
        telegram.send_text(MEMBERS[0], "@veil_test_bot why?", chat_id=GROUP)
        asked = len(MEMBERS) + 1  # the question's message id
        api = TelegramAPIServer.from_base(telegram.url)
        async with Bot(TOKEN, session=AiohttpSession(api=api)) as bot:
            editors = Editors(bot, Pace(group_per_minute=240))  # a slot every quarter second
            notices = [
                asyncio.create_task(
                    editors.tell_one(
                        GROUP, user_id, f"help for {user_id}", reply_to=n + 1, markup=None
                    )
                )
                for n, user_id in enumerate(MEMBERS)
            ]
            await telegram.wait_for("sendMessage", lambda c: c.params.get("chat_id") == GROUP)
            await asyncio.sleep(0)  # the other notices are queued
            await editors.post(GROUP, PLACEHOLDER, reply_to=asked, markup=None)
            await asyncio.gather(*notices)
        sent = [str(c.params.get("text")) for c in telegram.calls_of("sendMessage")]
        assert sorted(sent) == sorted([PLACEHOLDER, *(f"help for {u}" for u in MEMBERS)])
        assert sent.index(PLACEHOLDER) == 1  # after the notice that had the slot, no other
