"""What a user is told when something fails, shared by the errors router and detached answers.

``TEXTS`` maps each ``services.errors`` class to the user's text, first match wins (subclasses
before their parents); a button is added where it helps (Retry after a failed answer, the
packs when credit is short: Stars, and Gram and USDT when TON payments are on). Anything else
is a bug: logged with its type and traceback (never message text) and answered with a short
apology, so no failure ends in silence; but Telegram not taking a call now (a 5xx past the
session's retry, the network, a flood wait longer than the session waits) is no bug: it is
logged as ``telegram.unavailable`` and the user asked to send it again in a moment.

Outside the private chat (an inline message, a group) a failure is told briefly where the answer
was shown (``tell_outside``): in the inline message itself, or to the asker alone; a bug is
told the same way (``apologise_outside``): in an inline answer's message, and in a group to its
asker alone, never to the whole group (a part of the answer shown gets a note for anyone that it
broke off there, not the apology).

Two callers tell it: the errors router (``handlers.errors``), for a failure an update's handler
let through, and an answer (private chat, inline, group), which runs detached from its update
(``ChatService.start`` and ``detach``) and so reports its own failure, in the same place, with
the same text, button and log line. The bot provides ``Failures`` as workflow data (``failures``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError

from handlers.replies import (
    TELEGRAM_LATER,
    buy_keyboard,
    link_keyboard,
    retry_keyboard,
    went_out,
)
from services.errors import (
    AnswerInProgress,
    BackendError,
    BillingError,
    ChatError,
    ContextTooLong,
    ErasureInProgress,
    HistoryUnavailable,
    InferenceBusy,
    InferenceError,
    InferenceUnavailable,
    InsufficientCredit,
    LedgerUnavailable,
    ModelStalled,
    NoPlan,
    OrderRejected,
    QuestionTooLong,
    SettingsUnavailable,
    StreamCorrupted,
    TooManyOrders,
    UntrustedGateway,
    VeilError,
)
from services.prices import format_units
from services.ton.errors import (
    PaymentAmbiguous,
    PaymentNotFound,
    PaymentNotUnmatched,
    PaymentUnpriced,
)

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import InlineKeyboardMarkup

    from common.texts import Texts
    from handlers.sinks import DraftTarget, EditedAnswer, Editors
    from models.outbox import Ending
    from services.answers import Shown
    from services.shop import Shop
    from services.ton.shop import TonShop

log = structlog.get_logger("veil.errors")

# First match wins: subclasses before their parents; VeilError last.
TEXTS: list[tuple[type[VeilError], str]] = [
    (UntrustedGateway, "error_untrusted"),
    (InferenceBusy, "error_busy"),
    (InferenceUnavailable, "error_unavailable"),
    (ModelStalled, "error_stalled"),
    (QuestionTooLong, "error_question_long"),
    (ContextTooLong, "error_context"),
    (BackendError, "error_backend"),
    (StreamCorrupted, "error_corrupted"),
    (InferenceError, "error_backend"),
    (ErasureInProgress, "erasing"),
    (AnswerInProgress, "busy"),
    (ChatError, "error_internal"),
    (HistoryUnavailable, "error_history"),
    (SettingsUnavailable, "error_settings"),
    (InsufficientCredit, "no_credit"),
    (NoPlan, "order_no_plan"),
    (TooManyOrders, "order_too_many"),
    (OrderRejected, "order_rejected"),
    (LedgerUnavailable, "error_ledger"),
    (PaymentNotFound, "ton_assign_not_found"),
    (PaymentAmbiguous, "ton_assign_ambiguous"),
    (PaymentNotUnmatched, "ton_assign_not_unmatched"),
    (PaymentUnpriced, "ton_assign_unpriced"),
    (BillingError, "error_internal"),
    (VeilError, "error_internal"),
]


def text_key(error: VeilError) -> str:
    """The catalog key of the user's text for ``error``."""
    return next(key for kind, key in TEXTS if isinstance(error, kind))


def _method_of(error: BaseException) -> str | None:
    """The Bot API call ``error`` names (aiogram's errors do; a plain decode error does not)."""
    method = getattr(error, "method", None)
    return None if method is None else type(method).__name__


def broke_off_key(error: VeilError) -> str:
    """The note under the part of an answer shown before ``error`` cut it off (it stays)."""
    if isinstance(error, StreamCorrupted):  # cut (or tampered with) on the way: no model fault
        return "answer_lost_here"
    if isinstance(error, ModelStalled):
        return "answer_stalled_here"
    if isinstance(error, ContextTooLong):  # the window filled as it wrote: asking again won't do
        return "answer_window_full_here"
    return "answer_broke_off" if isinstance(error, InferenceError) else text_key(error)


# The note under a private answer's part sent again, by how it ended (``models.outbox.Ending``):
# the one ``Failures.broke_off`` put under it live.
ENDING_NOTES: dict[Ending, str] = {
    "broke_off": "answer_broke_off",
    "lost": "answer_lost_here",
    "stalled": "answer_stalled_here",
    "window_full": "answer_window_full",
}


def log_bug(error: BaseException) -> None:
    """The one log line of a bug: its type and traceback, never message text."""
    log.error("handler_failed", error=type(error).__name__, exc_info=error)


def apology_key(error: BaseException) -> str:
    """Log a failure that is no ``VeilError``; the catalog key of what the user is told.

    Telegram that could not take a call now is no bug: ``telegram.unavailable``, without a
    trace. Nor is Telegram refusing the bot's token (401: revoked while the bot served; the
    bot stops on it, ``bot.conflict``): ``telegram.unauthorized``, without a trace.
    Anything else is: ``handler_failed``.
    """
    if isinstance(error, TELEGRAM_LATER) and not went_out(error):
        log.warning("telegram.unavailable", error=type(error).__name__, method=_method_of(error))
        return "error_telegram"
    if isinstance(error, TelegramUnauthorizedError):
        log.warning("telegram.unauthorized", method=_method_of(error), setting="VEIL_BOT_TOKEN")
        return "error_telegram"
    log_bug(error)
    return "error_internal"


@dataclass(frozen=True)
class Asker:
    """Who asked in a group: the chat, the user, their message (the answer's reply-to).

    ``thread_id``: the forum topic it was written in (None: the General topic, or no forum).
    """

    chat_id: int
    user_id: int
    message_id: int
    thread_id: int | None = None


async def tell_outside(  # noqa: PLR0913 -- the failure, and every place it may be told
    error: VeilError,
    texts: Texts,
    editors: Editors,
    shown: Shown | None,
    asker: Asker | None,
    *,
    answer: EditedAnswer | None = None,
) -> None:
    """Tell a failure outside the private chat, briefly, where the answer was (to be) shown.

    Under the answer itself when part of it is on screen (``answer.finished()``: the text
    that arrived before the model failed, which is paid for, stays, with a note that it broke
    off there). Else in the inline message itself when ``shown`` names one; else, in a group,
    to the ``asker`` alone (the placeholder, if one was posted, is taken back). No credit: a
    link to top up.
    """
    if answer is not None and await answer.finished():
        key = broke_off_key(error)
        log.info("error_replied", error=type(error).__name__, text=key, outside=True, noted=True)
        await answer.note(texts(key))
        return
    key = _short_key(error)
    log.info("error_replied", error=type(error).__name__, text=key, outside=True)
    markup = None
    if isinstance(error, InsufficientCredit):
        markup = link_keyboard(texts("top_up"), await editors.deep_link("buy"))
    await _tell_there(texts(key), markup, editors, shown, asker)


async def apologise_outside(  # noqa: PLR0913 -- the failure, and every place it may be told
    error: BaseException,
    texts: Texts,
    editors: Editors,
    shown: Shown | None,
    asker: Asker | None,
    *,
    answer: EditedAnswer | None = None,
) -> None:
    """A bug (or Telegram away) outside the private chat: logged, and told where it failed.

    Logged as ``Failures.apologise`` logs it (``handler_failed``, or ``telegram.unavailable``).
    In a group the ``asker`` alone is told (the apology is theirs), the placeholder taken back
    if nothing was shown; a part of the answer already shown stays, noted for the whole group
    that it broke off there (``answer_failed_here``), as for an asker gone from the group:
    unnoted, everyone else read it as the whole answer. An inline message (no ``asker``: it is
    the asker's own) is told as any failure there: under the part of the answer shown, else in
    place of it, its stop button gone.
    """
    key = apology_key(error)
    if answer is not None and await _part_shown(answer):
        if asker is None:
            await answer.note(texts(key))
            return
        await answer.note(texts("answer_failed_here"))
        shown = None  # the part shown stays: the apology goes to the asker alone
    await _tell_there(texts(key), None, editors, shown, asker)


async def _part_shown(answer: EditedAnswer) -> bool:
    """Whether part of ``answer`` is on screen; not when its final edit failed with the bug.

    The edit that failed is the one that would have shown it: the notice then takes the
    message's place, as when nothing was shown.
    """
    try:
        return await answer.finished()
    except Exception:  # noqa: BLE001 -- the failure being told, raised again: told already
        return False


async def _tell_there(
    text: str,
    markup: InlineKeyboardMarkup | None,
    editors: Editors,
    shown: Shown | None,
    asker: Asker | None,
) -> None:
    """``text`` in the inline message ``shown`` names, else to the ``asker`` alone."""
    if shown is not None and shown.inline_message_id is not None:
        await editors.replace_inline(shown.inline_message_id, text, markup, posted_in=shown.chat_id)
        return
    if asker is None:
        return
    if shown is not None and shown.message_id is not None:
        await editors.retract(asker.chat_id, shown.message_id)
    await editors.tell_one(
        asker.chat_id,
        asker.user_id,
        text,
        reply_to=asker.message_id,
        markup=markup,
        thread_id=asker.thread_id,
    )


async def noted(sink: DraftTarget, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """``text`` after a private-chat answer, with ``markup``'s buttons if there are any."""
    if markup is None:
        await sink.say(text)
    else:
        await sink.note(text, markup)


def _short_key(error: VeilError) -> str:
    """The catalog key of a failure told outside the private chat.

    No credit and busy have short texts of their own there: the private chat's name commands
    (/buy, /cancel) that mean nothing in another chat.
    """
    if isinstance(error, InsufficientCredit):
        return "short_no_credit"
    if isinstance(error, AnswerInProgress) and not isinstance(error, ErasureInProgress):
        return "short_busy"
    return text_key(error)


@dataclass(frozen=True)
class Failures:
    """Tells a private chat (or one of its topics) that something failed, and logs it."""

    bot: Bot
    shop: Shop
    min_answer_tokens: int
    ton: TonShop | None = None

    async def tell(
        self, error: VeilError, texts: Texts, chat_id: int | None, thread_id: int | None
    ) -> None:
        """``error``'s text (and button) to ``chat_id``, in topic ``thread_id``; logged first.

        Telegram refusing the message propagates (the caller's edge logs it).
        """
        key = text_key(error)
        log.info("error_replied", error=type(error).__name__, text=key)
        if chat_id is None:
            return
        text = texts(key, **self._fields(error))
        await self.bot.send_message(
            chat_id, text, reply_markup=self._markup(error, texts), message_thread_id=thread_id
        )

    async def apologise(
        self,
        error: BaseException,
        texts: Texts,
        chat_id: int | None,
        thread_id: int | None,
        *,
        kept: bool = False,
    ) -> None:
        """A bug: log it with its traceback (no text) and apologise to ``chat_id``, if any.

        Telegram that could not take a call now is told as that, and logged without a trace.
        ``kept``: it did not take an answer's final message, but its row is kept, and the
        outbox sends it at its next pass (within ``SWEEP_EVERY_S``, a minute): the user is told
        it follows (``answer_kept``), where "send that again" (``error_telegram``) had them ask,
        and pay for, the same question twice, then get both answers.
        """
        key = apology_key(error)
        if kept:
            key = "answer_kept"
            log.info("error_replied", error=type(error).__name__, text=key)
        if chat_id is None:
            return
        with contextlib.suppress(TelegramAPIError):  # Telegram itself failing: logged above
            await self.bot.send_message(chat_id, texts(key), message_thread_id=thread_id)

    async def broke_off(self, error: InferenceError, texts: Texts, sink: DraftTarget) -> None:
        """Under a private-chat answer's part that went out: it broke off there (and Retry).

        One the model server refused as too long once it had begun (its window filled) says
        so, with /new rather than Retry: the same question there would fill it again. The
        note, taken, is counted (``DraftTarget.note_taken``): the part's row stays until then.
        """
        if isinstance(error, ContextTooLong):
            key = "answer_window_full"
            log.info("error_replied", error=type(error).__name__, text=key, noted=True)
            await sink.say(texts(key))
        else:
            key = broke_off_key(error)
            log.info("error_replied", error=type(error).__name__, text=key, noted=True)
            await noted(sink, texts(key), retry_keyboard(texts, error.retry))
        await sink.note_taken()  # counted in the part's row, which it deletes (its last note)

    async def report(
        self, error: Exception, texts: Texts, chat_id: int, thread_id: int | None
    ) -> None:
        """``tell`` for a ``VeilError``, ``apologise`` for anything else."""
        if isinstance(error, VeilError):
            await self.tell(error, texts, chat_id, thread_id)
        else:
            await self.apologise(error, texts, chat_id, thread_id)

    def _fields(self, error: VeilError) -> dict[str, object]:
        if isinstance(error, InsufficientCredit):
            return {
                "needed": format_units(error.needed),
                "balance": format_units(error.balance),
                "free": error.free_tokens_left,
                "tokens": self.min_answer_tokens,
            }
        return {}

    def _markup(self, error: VeilError, texts: Texts) -> InlineKeyboardMarkup | None:
        if isinstance(error, QuestionTooLong):  # the same question would not fit again
            return None
        if isinstance(error, InferenceError):  # Retry where its question was kept for one
            return retry_keyboard(texts, error.retry)
        if isinstance(error, InsufficientCredit):
            return buy_keyboard(self.shop, texts, self.ton)
        return None
