"""Pieces more than one router uses: prices, keyboards, and reading what a message asks."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import structlog
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

from common.content import FILE, UNREAD, UNSEEN
from handlers.callbacks import BuyGram, BuyPack, BuyPlan, BuyUsdt, Continue, Retry, StopAnswer
from handlers.reading import rich_media_only, veils, words_of
from services.prices import format_units
from services.ton.shop import format_amount

if TYPE_CHECKING:
    from aiogram.types import CallbackQuery, InaccessibleMessage, MessageEntity, User

    from common.texts import Catalogs, Texts
    from services.answers import Said
    from services.prices import Prices
    from services.shop import Shop
    from services.ton.shop import TonShop

_BREAKS = ("\n", "\r")  # a line's end, CRLF's too
_AFTER_MENTION = ",.:;!?"  # "@veil, what…", "…and you, @veil?": taken out with the mention
# Telegram did not take a call now: the network, a 5xx, a flood wait longer than the session
# waits, a reply that is not the Bot API's (a proxy's page). The same call may go through later.
TELEGRAM_LATER = (TelegramNetworkError, TelegramRetryAfter, TelegramServerError, ClientDecodeError)
# Edited messages already told that an edit changes nothing, newest kept (``services.kept
# .Firsts``): the private chat's and the groups' alike.
EDITS_REMEMBERED = 10_000


def went_out(error: BaseException) -> bool:
    """Whether Telegram took the call after all: it said ok, to a result that does not validate.

    ``taken`` is the bot's ``UnreadableReply``'s (handlers cannot import ``bot``); such a
    message went out, so it is neither sent again nor told as lost.
    """
    return bool(getattr(error, "taken", False))


def per_thousand(units_per_token: int) -> str:
    """A per-token price in µ★ as Stars per 1000 tokens."""
    return format_units(units_per_token * 1000)


def prices_line(texts: Texts, prices: Prices, model: str) -> str:
    """The ``model_prices`` text for one model."""
    price = prices.for_model(model)
    return texts(
        "model_prices", price_in=per_thousand(price.input), price_out=per_thousand(price.output)
    )


def buy_keyboard(shop: Shop, texts: Texts, ton: TonShop | None = None) -> InlineKeyboardMarkup:
    """One button a pack, then the plan's, then the Gram and USDT packs when ``ton`` sells them."""
    rows = [
        [
            InlineKeyboardButton(
                text=texts("buy_pack", stars=pack.stars, credit=format_units(pack.units)),
                callback_data=BuyPack(pack_id=pack.id).pack(),
            )
        ]
        for pack in shop.packs
    ]
    if shop.plan is not None:
        rows.append(
            [
                InlineKeyboardButton(
                    text=texts(
                        "buy_plan", stars=shop.plan.stars, credit=format_units(shop.plan.units)
                    ),
                    callback_data=BuyPlan().pack(),
                )
            ]
        )
    if ton is not None:
        rows.extend(_ton_rows(ton, texts))
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _ton_rows(ton: TonShop, texts: Texts) -> list[list[InlineKeyboardButton]]:
    rows: list[list[InlineKeyboardButton]] = []
    for asset in ton.assets:
        for pack in ton.packs(asset):
            data = BuyGram(pack_id=pack.id) if asset == "gram" else BuyUsdt(pack_id=pack.id)
            text = texts(
                f"ton_buy_{asset}",
                amount=format_amount(asset, pack.amount),
                credit=format_units(pack.units),
            )
            rows.append([InlineKeyboardButton(text=text, callback_data=data.pack())])
    return rows


def retry_keyboard(texts: Texts, question: str | None) -> InlineKeyboardMarkup | None:
    """The Retry button under a failed answer: it asks the question kept under ``question``.

    None (no button) where no question was kept for it: there is nothing it could ask.
    """
    if question is None:
        return None
    data = Retry(question=question).pack()
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=texts("retry"), callback_data=data)]]
    )


def new_tag() -> str:
    """A stop tag (and inline result id): random, 16 URL-safe characters, no ``:``."""
    return secrets.token_urlsafe(12)


def continue_keyboard(texts: Texts, request_id: str) -> InlineKeyboardMarkup:
    """The Continue button under the note of an answer cut at its length limit."""
    data = Continue(request=request_id).pack()
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=texts("continue"), callback_data=data)]]
    )


def stop_keyboard(texts: Texts, tag: str) -> InlineKeyboardMarkup:
    """The stop button under an answer that streams by editing (inline, guest, group)."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=texts("stop"), callback_data=StopAnswer(tag=tag).pack())]
        ]
    )


def link_keyboard(text: str, url: str) -> InlineKeyboardMarkup:
    """One URL button (open the private chat, top up, read the whole answer)."""
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=text, url=url)]])


def names_veil(entity: MessageEntity, text: str, me: User) -> bool:
    """Whether ``entity`` mentions Veil (its @username, or Veil itself as a text mention)."""
    if entity.type == "text_mention":
        return entity.user is not None and entity.user.id == me.id
    return (
        entity.type == "mention"
        and me.username is not None
        and entity.extract_from(text).lower() == f"@{me.username}".lower()
    )


def without_mentions(text: str, ours: list[MessageEntity]) -> str:
    """``text`` without Veil's mentions ``ours`` (their spans, and punctuation right after one).

    Only where a mention was is the text tidied (the blanks around it made one, or none at a
    line's edge): the question's line breaks and indentation (code, a list) reach the model as
    written. Splitting on whitespace lost them in a guest summons; collapsing every run of
    blanks lost a group question's indentation.
    """
    units = text.encode("utf-16-le")
    kept: list[str] = []
    start = 0
    for entity in sorted(ours, key=lambda entity: entity.offset):
        kept.append(units[2 * start : 2 * entity.offset].decode("utf-16-le", errors="replace"))
        start = entity.offset + entity.length
    kept.append(units[2 * start :].decode("utf-16-le", errors="replace"))
    question = kept[0]
    for piece in kept[1:]:
        left, right = question.rstrip(" \t"), piece.lstrip(_AFTER_MENTION).lstrip(" \t")
        joined = left and right and not left.endswith(_BREAKS) and not right.startswith(_BREAKS)
        question = f"{left} {right}" if joined else left + right
    return _trimmed(question)


def _trimmed(question: str) -> str:
    """``question`` without the blanks at its ends; its first line's indentation kept.

    A mention on a line of its own, code under it: stripping the whole question took the
    indentation of the code's first line alone.
    """
    body = question.rstrip()
    head = body[: len(body) - len(body.lstrip())]
    return body[head.rfind("\n") + 1 :] if "\n" in head else body.lstrip()


# What a message may carry that the model never sees (a file, only where files are not read):
# media, and the contents no question goes with (a location, a poll, a dice, a story…).
def replies_to_unseen(message: Message, *, files_read: bool) -> bool:
    """Whether ``message`` replies to a photo, video, location, poll or the like with no caption.

    There is nothing in it the model could read ("what is this?" under a photo, or under
    another bot's rich message of photos alone): it would answer blind, and the asker be
    charged for a guess. Where files are not read (groups, guest
    mode) a file without a caption counts too. A captioned one goes as its caption
    (``replied_context``); a reply to another chat's media
    that quotes part of it is not refused (the private chat asks with the quote; a group or a
    summons, which read only ``reply_to_message``, with the question alone). Whoever sent it:
    Veil's own such messages (an invoice, its media) are as unseen to the model as anyone's,
    and its answers (text) are never of these kinds.
    """
    kinds = UNSEEN if files_read else (*UNSEEN, FILE)
    replied = message.reply_to_message
    if replied is not None:
        if (replied.caption or "").strip():
            return False
        return rich_media_only(replied) or any(getattr(replied, kind) is not None for kind in kinds)
    external = message.external_reply
    if external is None or message.quote is not None:
        return False
    return any(getattr(external, kind) is not None for kind in kinds)


def unread(message: Message) -> bool:
    """A filter: ``message`` stands for one the bot could not read (a newer Bot API's).

    Only its envelope was read (``bot.pruned.unread_envelope``): where it came from and, in a
    group, what names Veil in it. Where it was meant for Veil, its sender is told Veil could
    not read it (``unread`` in the catalogs): nothing is asked of the model (what was not read
    may be what it asks about), nothing charged. Each router that may take such a message
    (the private chat's, the groups', guest mode's) tells it first, before any other handler.
    """
    return bool((message.model_extra or {}).get(UNREAD))


def replied_context(message: Message, bot_id: int, catalogs: Catalogs) -> tuple[Said, ...]:
    """The message ``message`` replies to, as one turn of context (Veil's: assistant).

    Veil's words are the model's own answer wherever they stand (``veils``): a message Veil
    sent, an inline answer someone posted through it, a forward of one. A reply to an inline
    answer went to the model as the poster's words, and its question about them ("why?") as if
    the model had to judge a stranger's claim rather than explain its own. Anyone else's
    message, another bot's too, is the user's.

    None of a guest or inline answer that failed: the notice told in its place (one of
    ``catalogs``' notices, ``handlers.failures``) went to the model as Veil's answer.
    """
    replied = message.reply_to_message
    if replied is None:
        return ()
    text = words_of(
        replied, bot_id, catalogs
    )  # a rich message (Veil's own answer, say) read as text too
    if not text:
        return ()
    if veils(replied, bot_id) and catalogs.says(text):
        return ()
    return (("assistant" if veils(replied, bot_id) else "user", text),)


def one_off(context: tuple[Said, ...]) -> tuple[tuple[Said, ...], str | None]:
    """A one-off question's context, and the message it replies to (``Question.replied``).

    The message replied to is the context's last turn; the model reads it quoted before the
    question where the context, cut to the window, lost it (``ChatService``, as in the private
    chat): a thread whose older turns are too long for the window (a long answer quoted in it)
    dropped them with the answer after them, orphaned, and the question went alone. A context
    that is Veil's own answer alone (the message a guest summons or a group question replies
    to, whose question the bot does not know) opens with an answer, always dropped so: it is no
    context then, only quoted. None, and the context as it was, where it replies to nothing.
    """
    if len(context) == 1 and context[0][0] == "assistant":
        return (), context[0][1]
    return context, context[-1][1] if context else None


log = structlog.get_logger("veil.replies")

# What Telegram says to an edit of a message deleted since, or one it lets no bot edit.
PRESSED_GONE = ("message to edit not found", "message can't be edited")


def topic_of(message: Message | InaccessibleMessage | None) -> int | None:
    """The private chat's topic ``message`` is in (its ``message_thread_id``), None outside one.

    Only a topic message's thread id names a topic (a reply elsewhere may carry one too).
    """
    if not isinstance(message, Message) or message.chat.type != "private":
        return None
    return message.message_thread_id if message.is_topic_message else None


def forum_topic(message: Message) -> int | None:
    """The forum topic ``message`` was written in (None: the General topic, or no forum)."""
    return message.message_thread_id if message.is_topic_message else None


def pressed_in_private(query: CallbackQuery) -> bool:
    """Whether the button was under a message of the private chat with the bot.

    Retry, Continue and the /history list exist only there; a press forged under a group's or
    an inline message (whose id may be a private message's) must change nothing.
    """
    return isinstance(query.message, Message) and query.message.chat.type == "private"


async def show_pressed(query: CallbackQuery, text: str) -> None:
    """Put ``text`` in place of the private-chat message whose button was pressed.

    A press forged under another chat's message edits nothing (its id may be a private
    message's too). A second tap of the same button, before the first redrew it, puts the same
    text again: Telegram refuses that as "not modified", and the message says so already. A
    message the user deleted after the press (or one Telegram no longer lets the bot edit) is
    let be: the press was carried out, and an apology for it would be untrue.
    """
    if query.message is None or query.bot is None or not pressed_in_private(query):
        return
    try:
        await query.bot.edit_message_text(
            chat_id=query.from_user.id, message_id=query.message.message_id, text=text
        )
    except TelegramBadRequest as exc:
        if any(gone in exc.message for gone in PRESSED_GONE):
            log.info("replies.pressed_message_gone")
        elif "not modified" not in exc.message:
            raise
