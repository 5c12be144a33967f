"""One errors router: every error a handler lets through becomes one polite reply.

Handlers do not catch to reply. They let ``services.errors`` propagate, and ``TEXTS`` below maps
each class to the user's text, first match wins (subclasses before their parents); a button is
added where it helps (Retry after a failed answer, the packs when credit is short: Stars, and
Gram and USDT when TON payments are on). Anything
else is a bug: logged with its type and traceback (never message text) and answered with a
short apology, so no failure ends in silence. ``JournalUnavailable`` is the one exception that
passes through: the payment update must not be acknowledged, so Telegram delivers it again.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import structlog
from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import ExceptionTypeFilter

from handlers.replies import buy_keyboard, link_keyboard, retry_keyboard, topic_of
from services.errors import (
    AnswerInProgress,
    BackendError,
    BillingError,
    ChatError,
    ContextTooLong,
    HistoryUnavailable,
    InferenceBusy,
    InferenceError,
    InferenceUnavailable,
    InsufficientCredit,
    JournalUnavailable,
    LedgerUnavailable,
    ModelStalled,
    NoPlan,
    OrderRejected,
    StreamCorrupted,
    UntrustedGateway,
    VeilError,
)
from services.prices import format_units
from services.ton.errors import PaymentAmbiguous, PaymentNotFound, PaymentNotUnmatched

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import ErrorEvent, InlineKeyboardMarkup, Update

    from common.texts import Texts
    from handlers.sinks import Editors
    from services.answers import Shown
    from services.shop import Shop
    from services.ton.shop import TonShop

log = structlog.get_logger("veil.errors")

GROUPS = frozenset({"group", "supergroup"})

# First match wins: subclasses before their parents; VeilError last.
TEXTS: list[tuple[type[VeilError], str]] = [
    (UntrustedGateway, "error_untrusted"),
    (InferenceBusy, "error_busy"),
    (InferenceUnavailable, "error_unavailable"),
    (ModelStalled, "error_stalled"),
    (ContextTooLong, "error_context"),
    (BackendError, "error_backend"),
    (StreamCorrupted, "error_corrupted"),
    (InferenceError, "error_backend"),
    (AnswerInProgress, "busy"),
    (ChatError, "error_internal"),
    (HistoryUnavailable, "error_history"),
    (InsufficientCredit, "no_credit"),
    (NoPlan, "order_no_plan"),
    (OrderRejected, "order_rejected"),
    (LedgerUnavailable, "error_ledger"),
    (PaymentNotFound, "ton_assign_not_found"),
    (PaymentAmbiguous, "ton_assign_ambiguous"),
    (PaymentNotUnmatched, "ton_assign_not_unmatched"),
    (BillingError, "error_internal"),
    (VeilError, "error_internal"),
]


def text_key(error: VeilError) -> str:
    """The catalog key of the user's text for ``error``."""
    return next(key for kind, key in TEXTS if isinstance(error, kind))


def recipient(update: Update) -> int | None:
    """Who hears about a failed update: the private chat it came from, or the pressing user."""
    if update.message is not None:
        return update.message.chat.id
    if update.callback_query is not None:
        return update.callback_query.from_user.id
    return None


def recipient_topic(update: Update) -> int | None:
    """The private chat's topic the failed update came from (a reply goes there too)."""
    if update.message is not None:
        return topic_of(update.message)
    if update.callback_query is not None:
        return topic_of(update.callback_query.message)
    return None


def _fields(error: VeilError, min_answer_tokens: int) -> dict[str, object]:
    if isinstance(error, InsufficientCredit):
        return {
            "needed": format_units(error.needed),
            "balance": format_units(error.balance),
            "free": error.free_tokens_left,
            "tokens": min_answer_tokens,
        }
    return {}


def _markup(
    error: VeilError, texts: Texts, shop: Shop, ton: TonShop | None
) -> InlineKeyboardMarkup | None:
    if isinstance(error, InferenceError):
        return retry_keyboard(texts)
    if isinstance(error, InsufficientCredit):
        return buy_keyboard(shop, texts, ton)
    return None


async def on_veil_error(  # noqa: PLR0913 -- the router's injected parts
    event: ErrorEvent,
    texts: Texts,
    shop: Shop,
    min_answer_tokens: int,
    editors: Editors,
    *,
    ton: TonShop | None = None,
) -> None:
    """Reply with the error's text (and button); pass a journal failure through.

    Where the answer was being shown outside the private chat (an inline message, a group),
    the failure is told there briefly: in the inline message itself, or to the asker alone.
    """
    error = event.exception
    if isinstance(error, JournalUnavailable):
        raise error
    assert isinstance(error, VeilError)  # noqa: S101 -- the filter lets only these through
    update = event.update
    shown = editors.showing.pop(update.update_id)
    if shown is not None or in_group(update):
        await _tell_outside(update, shown, error, texts, editors)
        return
    key = text_key(error)
    log.info("error_replied", error=type(error).__name__, text=key)
    text = texts(key, **_fields(error, min_answer_tokens))
    await _tell(update, editors.bot, text, _markup(error, texts, shop, ton))


def in_group(update: Update) -> bool:
    """Whether ``update`` is a message in a group (where a notice is for its sender only)."""
    return update.message is not None and update.message.chat.type in GROUPS


async def _tell_outside(
    update: Update, shown: Shown | None, error: VeilError, texts: Texts, editors: Editors
) -> None:
    key = "short_no_credit" if isinstance(error, InsufficientCredit) else text_key(error)
    log.info("error_replied", error=type(error).__name__, text=key, outside=True)
    markup = None
    if isinstance(error, InsufficientCredit):
        markup = link_keyboard(texts("top_up"), await editors.deep_link("buy"))
    if shown is not None and shown.inline_message_id is not None:
        await editors.replace_inline(shown.inline_message_id, texts(key), markup)
        return
    message = update.message
    if message is None or message.from_user is None:
        return
    if shown is not None and shown.message_id is not None:
        await editors.retract(message.chat.id, shown.message_id)
    await editors.tell_one(
        message.chat.id,
        message.from_user.id,
        texts(key),
        reply_to=message.message_id,
        markup=markup,
    )


async def on_unexpected(event: ErrorEvent, bot: Bot, texts: Texts) -> None:
    """A bug: log it with its traceback and apologise."""
    error = event.exception
    log.error("handler_failed", error=type(error).__name__, exc_info=error)
    target = recipient(event.update)
    if target is not None:
        with contextlib.suppress(TelegramAPIError):  # Telegram itself failing: logged above
            await bot.send_message(
                target, texts("error_internal"), message_thread_id=recipient_topic(event.update)
            )


async def _tell(update: Update, bot: Bot, text: str, markup: InlineKeyboardMarkup | None) -> None:
    if update.callback_query is not None:
        with contextlib.suppress(TelegramAPIError):  # the query may be too old to answer
            await update.callback_query.answer()
    target = recipient(update)
    if target is None:
        return
    await bot.send_message(
        target, text, reply_markup=markup, message_thread_id=recipient_topic(update)
    )


def build_router() -> Router:
    """The errors router; include it once, on the dispatcher (errors bubble up to it)."""
    router = Router(name=__name__)
    router.errors.register(on_veil_error, ExceptionTypeFilter(VeilError))
    router.errors.register(on_unexpected, ExceptionTypeFilter(Exception))
    return router
