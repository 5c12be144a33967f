"""The errors router: a failure in any handler ends in one polite reply, never in silence."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiogram import F, Router
from aiogram.filters import Command
from structlog.testing import capture_logs

from handlers.callbacks import BuyPack
from handlers.failures import TEXTS, text_key
from services import errors as veil_errors
from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.test_journal import ledger_locked

if TYPE_CHECKING:
    from pathlib import Path

    from aiogram.types import CallbackQuery, Message
    from structlog.typing import EventDict

    from common.texts import Texts

USER = 8101
SECRET = "the launch codes are 0000"


def test_every_veil_error_has_a_text_and_subclasses_come_before_their_parents() -> None:
    kinds = [
        kind
        for kind in vars(veil_errors).values()
        if isinstance(kind, type) and issubclass(kind, veil_errors.VeilError)
    ]
    order = [kind for kind, _ in TEXTS]
    for kind in kinds:
        assert any(issubclass(kind, listed) for listed in order), kind
    for index, kind in enumerate(order):
        assert not any(issubclass(kind, earlier) for earlier in order[:index]), kind
    assert text_key(veil_errors.InsufficientCredit(1, 0)) == "no_credit"
    assert text_key(veil_errors.LedgerUnavailable("locked")) == "error_ledger"


async def test_a_ledger_failure_on_a_button_is_answered_not_silent(tmp_path: Path) -> None:
    async with running_stack(tmp_path, db_busy_timeout=0.2) as stack:
        pack = stack.veil.shop.packs[0]
        with capture_logs() as logs, ledger_locked(tmp_path / "veil.db"):
            stack.telegram.press_button(USER, BuyPack(pack_id=pack.id).pack(), message_id=1)
            messages = await stack.final_messages(USER, 1)
        await stack.telegram.wait_for("answerCallbackQuery")
    assert messages[0]["text"] == stack.veil.catalogs.for_language("en")("error_ledger")
    assert {"event": "error_replied", "error": "LedgerUnavailable", "text": "error_ledger"} in [
        {key: entry.get(key) for key in ("event", "error", "text")} for entry in logs
    ]


async def test_a_button_no_router_takes_is_answered(tmp_path: Path) -> None:
    # A button of an older version's message, or forged data: its spinner used to turn until
    # Telegram gave up.
    async with running_stack(tmp_path) as stack:
        stack.telegram.press_button(USER, "v0:pack:3", message_id=1, language_code="ru")
        answered = await stack.telegram.wait_for("answerCallbackQuery")
    assert (
        answered.params["text"]
        == "Эта кнопка больше не работает. Пожалуйста, отправьте команду ещё раз."
    )


async def test_a_bug_in_a_handler_is_logged_without_text_and_apologised_for(
    tmp_path: Path,
) -> None:
    async def explode(message: Message) -> None:  # noqa: ARG001 -- aiogram passes it
        raise RuntimeError("a bug")

    buggy = Router(name="buggy")
    buggy.message.register(explode, Command("explode"))
    async with running_stack(tmp_path) as stack:
        stack.veil.dispatcher.include_router(buggy)
        routers = stack.veil.dispatcher.sub_routers  # before the chat router, which answers
        routers.insert(1, routers.pop())  # a command it does not know (after the errors one)
        with capture_logs() as logs:
            stack.telegram.send_text(USER, f"/explode {SECRET}")
            messages = await stack.final_messages(USER, 1)
    assert messages[0]["text"] == stack.veil.catalogs.for_language("en")("error_internal")
    failed = [entry for entry in logs if entry["event"] == "handler_failed"]
    assert len(failed) == 1
    assert failed[0]["error"] == "RuntimeError"
    assert SECRET not in repr(logs)


async def test_a_reply_telegram_could_not_take_is_no_bug_and_is_told_as_such(
    tmp_path: Path,
) -> None:
    # /balance's reply met two 500s (the session retries a 5xx once): the operator read
    # handler_failed with a traceback, as for a bug, and the user "something went wrong on my
    # side … /paysupport reaches a person", for a Telegram that was busy a moment.
    async with running_stack(tmp_path) as stack:
        stack.telegram.fail_next(
            "sendMessage", status=500, description="Internal Server Error", count=2
        )
        with capture_logs() as logs:
            stack.telegram.send_text(USER, "/balance")
            (told,) = await stack.final_messages(USER, 1)
    en = stack.veil.catalogs.for_language("en")
    assert told["text"] == en("error_telegram")
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == []
    (unavailable,) = [entry for entry in logs if entry["event"] == "telegram.unavailable"]
    assert (unavailable["error"], unavailable["method"]) == ("TelegramServerError", "SendMessage")


async def balance_through_a_misbehaving_telegram(
    tmp_path: Path, how: str, replies: int
) -> tuple[list[dict[str, Any]], list[EventDict], Texts]:
    """/balance, its reply answered as ``how`` says (``HostileTelegram.misbehave``).

    The bot's first ``replies`` messages to the user, the logs meanwhile, the English texts.
    """
    telegram = HostileTelegram(token=TOKEN)
    async with running_stack(tmp_path, telegram_server=telegram) as stack:
        telegram.misbehave("sendMessage", how)
        with capture_logs() as logs:
            stack.telegram.send_text(USER, "/balance")
            messages = await stack.final_messages(USER, replies)
    assert telegram.misbehaved == [("sendMessage", how)]
    return messages, logs, stack.veil.catalogs.for_language("en")


async def test_a_reply_a_proxy_answered_with_its_own_page_is_told_as_telegram_unavailable(
    tmp_path: Path,
) -> None:
    # A proxy's page in place of the Bot API's answer (ClientDecodeError, no TelegramAPIError)
    # is a Telegram that cannot take the call now, as the payment desk and /refund treat it:
    # it was logged as handler_failed with a traceback and told as a bug of ours.
    (told,), logs, en = await balance_through_a_misbehaving_telegram(tmp_path, "page", 1)
    assert told["text"] == en("error_telegram")
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == []
    (unavailable,) = [entry for entry in logs if entry["event"] == "telegram.unavailable"]
    assert unavailable["method"] == "SendMessage"


async def test_a_reply_a_proxy_redirected_in_the_bot_apis_shape_is_told_as_telegram_unavailable(
    tmp_path: Path,
) -> None:
    # A redirect is not followed; one whose body has the Bot API's shape (an API gateway's 301
    # with {"ok": false, "error_code": 301, ...}) was read as the Bot API's own refusal, of a
    # status aiogram knows nothing of (a bare TelegramAPIError): logged as handler_failed with
    # a traceback and told as a bug of ours. It is no reply of the Bot API's, as any redirect.
    (told,), logs, en = await balance_through_a_misbehaving_telegram(tmp_path, "moved", 1)
    assert told["text"] == en("error_telegram")
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == []
    (unavailable,) = [entry for entry in logs if entry["event"] == "telegram.unavailable"]
    assert (unavailable["error"], unavailable["method"]) == ("UnreadableReply", "SendMessage")


async def test_a_reply_telegram_took_with_a_result_that_does_not_validate_is_not_told_as_lost(
    tmp_path: Path,
) -> None:
    # The Bot API's "ok" with a Message that does not validate: the reply reached the user, so
    # "Telegram did not take my reply, send that again" would be false; it is a mismatch of
    # ours with the Bot API (a bug, with its traceback), as before.
    (balance, told), logs, en = await balance_through_a_misbehaving_telegram(
        tmp_path, "malformed", 2
    )
    assert told["text"] == en("error_internal")
    assert balance["text"] != told["text"]
    assert [entry["event"] for entry in logs if entry["event"] == "telegram.unavailable"] == []
    (failed,) = [entry for entry in logs if entry["event"] == "handler_failed"]
    assert failed["error"] == "UnreadableReply"


async def test_an_answer_whose_token_is_revoked_on_the_way_is_not_logged_as_a_bug(
    tmp_path: Path,
) -> None:
    # The token revoked in @BotFather while an answer streams: Telegram refuses its drafts and
    # its final message 401, and the bot stops (telegram.token_refused). Each answer in flight
    # was also logged as a bug of ours (handler_failed, with a traceback) though nothing in
    # the bot failed and nothing could be told to the user.
    answer = " ".join(f"w{i}" for i in range(60))
    async with running_stack(tmp_path, answer=answer, token_delay=0.05) as stack:
        with capture_logs() as logs:
            stack.telegram.send_text(USER, "a question")
            async with asyncio.timeout(30):
                while not [c for c in stack.telegram.calls if c.method == "sendMessageDraft"]:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            stack.telegram.token = "123456:REVOKED"  # every method refused from here on
            assert await stack.veil.chat.wait_idle(30)
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == []
    refused = [entry for entry in logs if entry["event"] == "telegram.unauthorized"]
    assert refused
    assert refused[0]["method"] == "SendMessage"


async def test_a_failed_press_whose_answer_a_proxy_redirects_is_still_told(
    tmp_path: Path,
) -> None:
    # A button's handler failed before it answered the press, and the errors router's answer
    # met a proxy's redirect (not followed: a reply that is not the Bot API's, UnreadableReply,
    # which is no TelegramAPIError). It escaped the errors router, and aiogram handed it back
    # as a failure of its own: the user read "Telegram did not take my reply" for the bug and
    # for the ledger alike, and the bug was never logged (no handler_failed, no traceback).
    async def explode(query: CallbackQuery) -> None:  # noqa: ARG001 -- aiogram passes it
        raise RuntimeError("a bug")

    async def busy(query: CallbackQuery) -> None:  # noqa: ARG001 -- aiogram passes it
        raise veil_errors.LedgerUnavailable("locked")

    buggy = Router(name="buggy")
    buggy.callback_query.register(explode, F.data == "explode")
    buggy.callback_query.register(busy, F.data == "busy")
    telegram = HostileTelegram(token=TOKEN)
    async with running_stack(tmp_path, telegram_server=telegram) as stack:
        stack.veil.dispatcher.include_router(buggy)
        routers = stack.veil.dispatcher.sub_routers  # before the router that answers any press
        routers.insert(1, routers.pop())
        with capture_logs() as logs:
            for count, data in enumerate(("explode", "busy"), start=1):
                telegram.misbehave("answerCallbackQuery", "login")
                telegram.press_button(USER, data, message_id=1)
                await stack.final_messages(USER, count)
    assert telegram.misbehaved == [("answerCallbackQuery", "login")] * 2
    en = stack.veil.catalogs.for_language("en")
    told = [message["text"] for message in telegram.sent_messages(USER)]
    assert told == [en("error_internal"), en("error_ledger")]
    assert [entry["error"] for entry in logs if entry["event"] == "handler_failed"] == [
        "RuntimeError"
    ]
