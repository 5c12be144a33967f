"""Crash safety: SIGKILL the bot mid-payment and mid-answer, restart, redeliver; nothing lost.

After the restart, each user whose private-chat answer the crash cut off is told so, once, in
their language and topic; the answer is not charged.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import TYPE_CHECKING

from aiohttp import web

from bot.telegram import build_bot
from common.texts import Catalogs
from handlers.chat import tell_interrupted
from models import MasterKey, Store
from models.holds import AnswerChat
from tests.books import inconsistent_users
from tests.botstack import TOKEN, process_stack, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.fakes.telegram import FakeTelegram
from tests.harness import ManagedProcess, free_port
from tests.test_journal import ledger_locked

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.fakes.telegram import Call

USERS = [9101, 9102, 9103]


def chat_is(user: int) -> Callable[[Call], bool]:
    return lambda call: call.params["chat_id"] == user


STAR = 1_000_000


async def test_kill_during_payments_and_answers_then_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    answer = " ".join(f"w{i}" for i in range(40))
    async with process_stack(data, answer=answer, token_delay=0.05) as stack:
        telegram = stack.telegram
        env = stack.env | {
            "VEIL_PRICES": "*=1000/2000",
            "VEIL_FREE_TOKENS_PER_DAY": "0",
            "VEIL_MAX_ANSWER_TOKENS": "100",
        }
        bot = await ManagedProcess.start("-m", "bot", env=env, measured=False)
        await bot.wait_for_line("bot.started")
        # Everyone pays for credit (orders unknown to the bot: credited and flagged).
        charges = {
            user: telegram.pay(user, payload=f"crash-{user}", total_amount=50) for user in USERS
        }
        for user in USERS:
            await telegram.wait_for("sendMessage", chat_is(user), timeout=20)
        # Questions in flight, and a second payment arriving, when the bot dies.
        for user in USERS:
            telegram.send_text(user, "a slow answer please")
        await telegram.wait_for("sendMessageDraft")
        late = telegram.pay(USERS[0], payload="crash-late", total_amount=250)
        await bot.kill()
        # Restart; Telegram redelivers the payments it is unsure were handled.
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            recovered = bot.json_event("bot.holds_recovered")
            assert 1 <= int(str(recovered["count"])) <= len(USERS)
            for user, charge in charges.items():
                telegram.pay(user, payload=f"crash-{user}", total_amount=50, charge_id=charge)
            telegram.pay(USERS[0], payload="crash-late", total_amount=250, charge_id=late)
            telegram.send_text(USERS[1], "and one more after the restart")
            await telegram.wait_for(
                "sendMessage",
                lambda c: c.params["chat_id"] == USERS[1] and c.params["text"] == answer,
                timeout=30,
            )
            await asyncio.sleep(0.5)
        finally:
            assert await bot.stop() == 0
    with sqlite3.connect(data / "veil.db") as db:
        payments = db.execute("SELECT charge_id, stars FROM payments").fetchall()
        purchases = db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'purchase'"
        ).fetchone()[0]
        charged = db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind IN ('usage', 'free')"
        ).fetchone()[0]
        total = db.execute("SELECT COALESCE(SUM(amount), 0) FROM ledger").fetchone()[0]
        open_holds = db.execute(
            "SELECT COUNT(*) FROM ledger h WHERE h.kind = 'hold' AND NOT EXISTS"
            " (SELECT 1 FROM ledger r WHERE r.source = 'release:' || substr(h.source, 6))"
        ).fetchone()[0]
    assert sorted(stars for _, stars in payments) == [50, 50, 50, 250]
    assert purchases == 400 * STAR  # every payment credited exactly once
    assert open_holds == 0  # holds of the killed answers were released at restart
    assert total == purchases + charged  # the ledger is what was paid minus what receipts charged
    assert charged < 0
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    try:
        assert await inconsistent_users(store) == []
    finally:
        await store.close()


async def test_answers_a_crash_cut_off_are_told_after_the_restart_and_not_charged(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    ann, bob, cid, group = 9201, 9202, 9203, -100_9200
    answer = " ".join(f"w{i}" for i in range(200))
    catalogs = Catalogs()
    interrupted = {catalogs.for_language(code)("interrupted") for code in ("en", "ru", "kk")}

    def told_to(user: int) -> Callable[[Call], bool]:
        return lambda call: call.params["chat_id"] == user and call.params["text"] in interrupted

    async with process_stack(data, answer=answer, token_delay=0.05) as stack:
        telegram, vllm, env = stack.telegram, stack.vllm, stack.env
        telegram.state.topics.enabled = True
        bot = await ManagedProcess.start("-m", "bot", env=env, measured=False)
        await bot.wait_for_line("bot.started")
        topic = telegram.create_topic(bob, "Trip")
        telegram.send_text(ann, "a long story please", language_code="ru")
        telegram.send_text(bob, "and one for me", thread_id=topic)
        telegram.send_text(cid, "@veil_test_bot a story for the group", chat_id=group)
        for user in (ann, bob):
            await telegram.wait_for("sendMessageDraft", chat_is(user), timeout=30)
        while len(vllm.requests) < 3:  # noqa: ASYNC110 -- the fake's record has no event
            await asyncio.sleep(0.02)
        await bot.kill()
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            assert bot.json_event("bot.holds_recovered")["count"] == 3
            told_ann = await telegram.wait_for("sendMessage", told_to(ann), timeout=30)
            told_bob = await telegram.wait_for("sendMessage", told_to(bob), timeout=30)
            await bot.wait_for_line("chat.interrupted_told")
        finally:
            stopped = await bot.stop()
    assert stopped == 0
    assert told_ann.params["text"] == catalogs.for_language("ru")("interrupted")
    assert told_bob.params["text"] == catalogs.for_language("en")("interrupted")
    assert told_bob.params["message_thread_id"] == topic
    told = [c for c in telegram.calls_of("sendMessage") if c.params["text"] in interrupted]
    assert sorted(c.params["chat_id"] for c in told) == [ann, bob]  # once each; not the group's
    with sqlite3.connect(data / "veil.db") as db:
        outcomes = db.execute("SELECT outcome, COUNT(*) FROM holds GROUP BY outcome").fetchall()
        charged = db.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'usage'").fetchone()[0]
        left = db.execute("SELECT COUNT(*) FROM hold_chats").fetchone()[0]
    assert outcomes == [("recovered", 3)]
    assert charged == 0
    assert left == 0  # nothing kept of where the answers were, once told


async def test_a_cut_off_answer_is_told_when_telegram_can_take_it_and_never_twice(
    tmp_path: Path,
) -> None:
    ann, bob = 9301, 9302
    async with running_stack(tmp_path / "data") as stack:
        veil, telegram = stack.veil, stack.telegram
        for user in (ann, bob):
            await veil.credit.hold(user, f"cut-{user}", "veil-test", 10, 50, chat=AnswerChat(user))
        await veil.credit.hold(ann, "group-answer", "veil-test", 10, 50)  # no private chat
        assert await veil.credit.recover(0) == 3
        # Telegram fails (a 5xx, and again on the retry): nobody is told yet, nobody forgotten.
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=2)
        assert await tell_interrupted(veil.bot, veil.catalogs, veil.credit) == 0
        assert [cut.user_id for cut in await veil.credit.interrupted()] == [ann, bob]
        # Ann blocked the bot meanwhile: she cannot be told, and is not tried again.
        telegram.state.blocked_users.add(ann)
        assert await tell_interrupted(veil.bot, veil.catalogs, veil.credit) == 1
        assert await veil.credit.interrupted() == []
        assert await tell_interrupted(veil.bot, veil.catalogs, veil.credit) == 0
    text = Catalogs().for_language("en")("interrupted")
    told = [c for c in telegram.calls_of("sendMessage") if c.params["text"] == text]
    assert [(c.params["chat_id"], c.answered) for c in told] == [
        (ann, "Bad Gateway"),
        (ann, "Bad Gateway"),
        (ann, "Forbidden: bot was blocked by the user"),
        (bob, "ok"),
    ]


async def test_two_tellers_at_once_tell_each_cut_off_answer_once(tmp_path: Path) -> None:
    # Two bot processes on one database (webhook mode during a deploy, each with its upkeep):
    # each notice is claimed before it is sent, so only one of them sends it.
    users = [9401, 9402, 9403]
    async with running_stack(tmp_path / "data") as stack:
        veil, telegram = stack.veil, stack.telegram
        for user in users:
            await veil.credit.hold(user, f"cut-{user}", "veil-test", 10, 50, chat=AnswerChat(user))
        assert await veil.credit.recover(0) == len(users)
        other = build_bot(TOKEN, telegram.url)  # the other process's own Bot and session
        try:
            counts = await asyncio.gather(
                tell_interrupted(veil.bot, veil.catalogs, veil.credit),
                tell_interrupted(other, veil.catalogs, veil.credit),
            )
        finally:
            await other.session.close()
        assert await veil.credit.interrupted() == []
    text = Catalogs().for_language("en")("interrupted")
    told = [
        c.params["chat_id"] for c in telegram.calls_of("sendMessage") if c.params["text"] == text
    ]
    assert sorted(told) == users
    assert sum(counts) == len(users)


async def test_a_reply_that_is_not_json_leaves_the_notice_for_the_next_try(
    tmp_path: Path,
) -> None:
    # A proxy in front of Telegram answers with its own HTML error page: aiogram cannot decode
    # it (ClientDecodeError, no TelegramAPIError), which must not end the upkeep loop.
    async def html_page(_: web.Request) -> web.Response:
        return web.Response(
            status=502, text="<html>502 Bad Gateway</html>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", html_page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ann = 9501
    try:
        async with running_stack(tmp_path / "data") as stack:
            veil = stack.veil
            await veil.credit.hold(ann, "cut-ann", "veil-test", 10, 50, chat=AnswerChat(ann))
            assert await veil.credit.recover(0) == 1
            proxied = build_bot(TOKEN, f"http://127.0.0.1:{port}")
            try:
                assert await tell_interrupted(proxied, veil.catalogs, veil.credit) == 0
            finally:
                await proxied.session.close()
            assert [cut.user_id for cut in await veil.credit.interrupted()] == [ann]
            assert await tell_interrupted(veil.bot, veil.catalogs, veil.credit) == 1
            assert await veil.credit.interrupted() == []
    finally:
        await runner.cleanup()


async def test_a_notice_telegram_took_with_a_reply_that_does_not_validate_is_told_once(
    tmp_path: Path,
) -> None:
    # The Bot API's "ok" with a Message that does not validate: the notice went out. Taken for
    # a Telegram that cannot take it now, it was kept and told again on the next try.
    ann = 9502
    async with (
        running_stack(tmp_path / "data") as stack,
        HostileTelegram(token=TOKEN) as elsewhere,
    ):
        veil = stack.veil
        await veil.credit.hold(ann, "cut-ann", "veil-test", 10, 50, chat=AnswerChat(ann))
        assert await veil.credit.recover(0) == 1
        elsewhere.misbehave("sendMessage", "malformed")
        hostile = build_bot(TOKEN, elsewhere.url)
        try:
            assert await tell_interrupted(hostile, veil.catalogs, veil.credit) == 1
        finally:
            await hostile.session.close()
        assert await veil.credit.interrupted() == []
    assert elsewhere.misbehaved == [("sendMessage", "malformed")]


async def test_a_cut_off_answer_in_a_topic_since_deleted_is_told_in_the_chat_itself(
    tmp_path: Path,
) -> None:
    ann = 9701
    telegram = FakeTelegram(token=TOKEN)
    telegram.state.topics.enabled = True
    async with running_stack(tmp_path / "data", telegram_server=telegram) as stack:
        veil = stack.veil
        gone = 4242  # the topic the answer was written in; the user deleted it since
        await veil.credit.hold(ann, "cut-ann", "veil-test", 10, 50, chat=AnswerChat(ann, gone))
        assert await veil.credit.recover(0) == 1
        assert await tell_interrupted(veil.bot, veil.catalogs, veil.credit) == 1
        assert await veil.credit.interrupted() == []
    text = Catalogs().for_language("en")("interrupted")
    told = [c for c in telegram.calls_of("sendMessage") if c.params["text"] == text]
    assert [(c.params.get("message_thread_id"), c.answered) for c in told] == [
        (gone, "Bad Request: message thread not found"),
        (None, "ok"),
    ]


async def test_an_answer_delivered_whose_charge_failed_is_swept_without_a_cut_off_notice(
    tmp_path: Path,
) -> None:
    # The ledger is locked past the busy timeout when the answer ends: the final message goes
    # out all the same and the hold is left to the sweep. The user has the answer: the sweep
    # must not leave them to be told it was cut off.
    ann = 9801
    answer = " ".join(f"wren{i}" for i in range(20))
    async with running_stack(
        tmp_path, answer=answer, token_delay=0.02, db_busy_timeout=0.2
    ) as stack:
        veil = stack.veil
        stack.telegram.send_text(ann, "a short one")
        await stack.telegram.wait_for("sendMessageDraft", chat_is(ann))
        with ledger_locked(tmp_path / "veil.db"):
            messages = await stack.final_messages(ann, 2, within=20)
        assert messages[0]["text"] == answer
        later = time.time() + veil.chat.hold_lifetime + 60
        veil.credit._clock = lambda: later  # the sweep's turn, once the hold is old enough
        assert await veil.chat.sweep() == 1
        assert await veil.credit.interrupted() == []
        assert await tell_interrupted(veil.bot, veil.catalogs, veil.credit) == 0
        assert await inconsistent_users(veil.store) == []
    text = Catalogs().for_language("en")("interrupted")
    assert text not in [m["text"] for m in stack.telegram.sent_messages(ann)]


async def test_forget_before_the_notice_keeps_no_topic_of_the_user_and_tells_nothing(
    tmp_path: Path,
) -> None:
    # /forget erases the user's conversations with their topic ids, and nothing of what it
    # erases is sent afterwards: the topic a cut-off answer was written in goes with them.
    ann, bob = 9901, 9902
    async with running_stack(tmp_path / "data") as stack:
        veil = stack.veil
        for user in (ann, bob):
            chat = AnswerChat(user, 77)
            await veil.credit.hold(user, f"cut-{user}", "veil-test", 10, 50, chat=chat)
        assert await veil.credit.recover(0) == 2
        await veil.store.ensure_user(ann, "en")
        await veil.store.forget(ann)
        assert [cut.user_id for cut in await veil.credit.interrupted()] == [bob]
        assert await inconsistent_users(veil.store) == []
    with sqlite3.connect(tmp_path / "data" / "veil.db") as db:
        kept = db.execute("SELECT request_id FROM hold_chats").fetchall()
    assert kept == [(f"cut-{bob}",)]


async def test_a_long_flood_wait_on_the_notice_leaves_it_for_later_without_waiting(
    tmp_path: Path,
) -> None:
    ann = 9951
    async with running_stack(tmp_path / "data") as stack:
        veil, telegram = stack.veil, stack.telegram
        await veil.credit.hold(ann, "cut-ann", "veil-test", 10, 50, chat=AnswerChat(ann))
        assert await veil.credit.recover(0) == 1
        telegram.fail_next(
            "sendMessage", status=429, description="Too Many Requests", retry_after=600
        )
        async with asyncio.timeout(5):  # not the ten minutes Telegram asks for
            assert await tell_interrupted(veil.bot, veil.catalogs, veil.credit) == 0
        assert [cut.user_id for cut in await veil.credit.interrupted()] == [ann]
        assert await tell_interrupted(veil.bot, veil.catalogs, veil.credit) == 1
    text = Catalogs().for_language("en")("interrupted")
    told = [c.answered for c in telegram.calls_of("sendMessage") if c.params["text"] == text]
    assert told == ["Too Many Requests", "ok"]
