"""One errors router: every error a handler lets through becomes one polite reply.

Handlers do not catch to reply. They let ``services.errors`` propagate, and the router replies
with the error's text and button (``handlers.failures``, shared with the answers, which run
detached from their update and report their own failures the same way). Anything else is a
bug: logged with its type and traceback (never message text) and answered with a short
apology, so no failure ends in silence (in a group, to its sender alone, as a notice; for an
inline answer not yet started, in its message).
``JournalUnavailable`` is the one exception that passes through: the payment update must not be
acknowledged, so Telegram delivers it again. A pre-checkout query that failed is refused at
once with a polite reason (nothing is charged), rather than left for Telegram to time out after
its 10 seconds.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import structlog
from aiogram import Router
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.filters import ExceptionTypeFilter

from handlers.failures import Asker, apologise_outside, tell_outside
from handlers.replies import forum_topic, topic_of
from services.errors import JournalUnavailable, VeilError

if TYPE_CHECKING:
    from aiogram.types import ErrorEvent, PreCheckoutQuery, Update

    from common.texts import Texts
    from handlers.failures import Failures
    from handlers.sinks import Editors
    from services.answers import Shown

log = structlog.get_logger("veil.errors")

GROUPS = frozenset({"group", "supergroup"})
# What answering a press or refusing a checkout may meet on the way to telling the failure:
# Telegram's refusal (the query too old), or a reply that is not the Bot API's (a proxy's page
# or redirect: ``ClientDecodeError``, no ``TelegramAPIError``). Either escaping the errors
# router was handled by it again as a failure of its own: the user was told "Telegram did not
# take my reply" and the failure itself (a bug's traceback) was never logged.
COURTESY_REFUSED = (TelegramAPIError, ClientDecodeError)


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


async def on_veil_error(
    event: ErrorEvent, texts: Texts, editors: Editors, failures: Failures
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
    if update.pre_checkout_query is not None:
        log.warning("error_replied", error=type(error).__name__, text="precheckout_unavailable")
        await refuse_checkout(update.pre_checkout_query, texts)
        return
    shown = editors.showing.pop(update.update_id)
    if shown is not None or in_group(update):
        await _tell_outside(update, shown, error, texts, editors)
        return
    if update.callback_query is not None:
        with contextlib.suppress(*COURTESY_REFUSED):  # the query may be too old to answer
            await update.callback_query.answer()
    await failures.tell(error, texts, recipient(update), recipient_topic(update))


def in_group(update: Update) -> bool:
    """Whether ``update`` is a message in a group (where a notice is for its sender only)."""
    return update.message is not None and update.message.chat.type in GROUPS


async def _tell_outside(
    update: Update, shown: Shown | None, error: VeilError, texts: Texts, editors: Editors
) -> None:
    await tell_outside(error, texts, editors, shown, _asker(update))


def _asker(update: Update) -> Asker | None:
    """Who sent ``update``'s message in a group, to be told alone."""
    message = update.message
    if message is None or message.from_user is None:
        return None
    return Asker(message.chat.id, message.from_user.id, message.message_id, forum_topic(message))


async def on_unexpected(
    event: ErrorEvent, texts: Texts, failures: Failures, editors: Editors
) -> None:
    """A bug: log it with its traceback and apologise (in a group, to the sender alone).

    Where the answer was being shown outside the private chat (an inline message), the apology
    goes there, in place of its placeholder, as ``on_veil_error`` tells a failure. A button's
    press is answered too, or its button spins until Telegram gives up on it.
    """
    update = event.update
    shown = editors.showing.pop(update.update_id)
    if shown is not None or in_group(update):
        await apologise_outside(event.exception, texts, editors, shown, _asker(update))
        return
    if update.callback_query is not None:
        with contextlib.suppress(*COURTESY_REFUSED):  # the query may be too old, or answered
            await update.callback_query.answer()
    await failures.apologise(event.exception, texts, recipient(update), recipient_topic(update))
    if update.pre_checkout_query is not None:
        await refuse_checkout(update.pre_checkout_query, texts)


async def refuse_checkout(query: PreCheckoutQuery, texts: Texts) -> None:
    """Refuse a checkout the shop could not judge; nothing is charged, the user may try again."""
    with contextlib.suppress(*COURTESY_REFUSED):  # too late: Telegram has refused it itself
        await query.answer(ok=False, error_message=texts("precheckout_unavailable"))


def build_router() -> Router:
    """The errors router; include it once, on the dispatcher (errors bubble up to it)."""
    router = Router(name=__name__)
    router.errors.register(on_veil_error, ExceptionTypeFilter(VeilError))
    router.errors.register(on_unexpected, ExceptionTypeFilter(Exception))
    return router
