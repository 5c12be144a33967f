"""Veil in any chat: inline queries (``@veilbot question``) and guest mode.

An inline query is answered at once, without the model: one personal, uncached article whose
message is a placeholder with a stop button (the keyboard is what makes Telegram send
``chosen_inline_result`` with an ``inline_message_id``). Only the chosen result is answered,
and charged: the answer streams into that inline message by editing it at a group-safe pace
(into a rich message where Telegram takes one, ``bot.editing``).
A guest message (the bot summoned where it is not a member) is answered the same way through
``answerGuestQuery``; the message it replies to is the question's context (one of Veil's own
answers, whose question is not known, quoted before the question: ``one_off``). Both are one-off
questions: nothing is read from or stored in the asker's history unless they opted in
(/settings). The answer runs detached from its update (``ChatService.start``), so the update is
not kept while it streams; a failure, a bug included, is told in the inline message, as the
errors router tells one (``handlers.failures``), under the part of the answer already shown if
there is one (it is paid for, and stays), never leaving the placeholder or its stop button.
A stop button is shown before its answer begins (the article sent, its ``chosen_inline_result``
not handled yet; a guest answer just posted): each is offered to the chat service as it goes
out (``ChatService.offer``), so the asker's press then stops the answer ahead, nothing asked or
charged, and the message says it stopped.
A message deleted mid-answer stops the answer; a chosen result or guest summons Telegram
delivers again is not answered twice (``editors.answered``). A summons that fails before its
answer (Telegram failing to say who the bot is) is told in that one answer: nothing else the
bot sends reaches a chat it is not a member of.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

import structlog
from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.types import (
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    Message,
)

from common.logs import describe
from common.visible import glyphs_within, shows_nothing
from handlers.callbacks import StopAnswer
from handlers.commands import forwarded
from handlers.failures import apologise_outside, tell_outside
from handlers.replies import (
    TELEGRAM_LATER,
    link_keyboard,
    names_veil,
    new_tag,
    one_off,
    replied_context,
    replies_to_unseen,
    stop_keyboard,
    unread,
    without_mentions,
)
from models.outbox import Outbound
from services.answers import Shown
from services.errors import VeilError
from services.questions import Question

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from aiogram import Bot
    from aiogram.types import CallbackQuery, ChosenInlineResult, InlineQuery, Update

    from common.texts import Texts
    from handlers.sinks import EditedAnswer, Editors, GroupStops
    from services.chat import ChatService
    from services.questions import Answer

log = structlog.get_logger("veil.inline")

HELP_RESULT = "help"
# An inline or guest query's answer Telegram refused as too old, or held back by a flood wait
# longer than the query lives (``bot.telegram.RetryMiddleware`` waits no longer than that).
QUERY_GONE = (TelegramBadRequest, TelegramRetryAfter)
TITLE_CHARS = 60  # of the question, in the result's title
# Of the question, above the answer: a guest's question may be near Telegram's 4096 characters
# (an inline query has at most 256), and the message holds the question and the answer.
HEADER_CHARS = 500


def shortened(text: str, chars: int) -> str:
    """``text``, cut to ``chars`` characters with an ellipsis when it is longer.

    Cut between glyphs (``common.visible``): never inside an emoji or a letter and its marks.
    """
    return text if len(text) <= chars else glyphs_within(text, chars - 1) + "…"


def asked_words(text: str) -> str:
    """``text`` stripped; nothing where it shows nothing (zero-width spaces alone, say).

    Such a query reads as empty in the user's app; sent, it would be a question no one can
    see, answered and charged.
    """
    return "" if shows_nothing(text) else text.strip()


def article(texts: Texts, tag: str, question: str) -> InlineQueryResultArticle:
    """The one result for a question: its message is the placeholder, with the stop button."""
    title = shortened(question, TITLE_CHARS)
    return InlineQueryResultArticle(
        id=tag,
        title=texts("inline_title", question=title),
        description=texts("inline_description"),
        input_message_content=InputTextMessageContent(
            message_text=texts("inline_placeholder", question=shortened(question, HEADER_CHARS))
        ),
        reply_markup=stop_keyboard(texts, tag),
    )


class NewestQueries:
    """Each user's newest inline query whose answer is on its way; older ones' are dropped.

    Telegram sends a query a keystroke or so, and the user's app shows the newest one's results
    only. An answer that met a flood wait waited it out (``bot.telegram.RetryMiddleware``): a
    user who typed on during the wait left one answer a keystroke, all sent at once when it
    ended, into the flood that held them, for queries nobody would see. A newer query of the
    same user cancels the answer of an older one still on its way, and one handled after a
    newer one (updates are handled side by side) is not answered.
    """

    def __init__(self) -> None:
        self._sending: dict[int, tuple[int, asyncio.Task[bool]]] = {}

    async def answer(self, user_id: int, update_id: int, send: Awaitable[bool]) -> bool:
        """Send ``send`` (a query's answer, sent once awaited) unless a newer query came.

        Whether it was sent (False: dropped for a newer query of the user's).
        """
        newest = self._sending.get(user_id)
        if newest is not None:
            if newest[0] > update_id:
                return False
            newest[1].cancel()
        sending = asyncio.create_task(_awaited(send))
        self._sending[user_id] = (update_id, sending)
        try:
            return await sending
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not sending.cancelled() or (current is not None and current.cancelling()):
                raise
            log.info("inline.query_superseded")
            return False
        finally:
            if self._sending.get(user_id, (0, None))[1] is sending:
                del self._sending[user_id]


async def _awaited(call: Awaitable[bool]) -> bool:
    """``call``'s result: a Bot API method object, awaited in a task of its own."""
    return await call


async def on_inline_query(  # noqa: PLR0913, PLR0917 -- what the query needs, as aiogram hands it
    query: InlineQuery,
    event_update: Update,
    texts: Texts,
    chat: ChatService,
    editors: Editors,
    newest: NewestQueries,
) -> None:
    """Answer at once: one personal article (or, for an empty query, how to use it).

    Unless the same user typed on meanwhile: only the newest query's answer goes
    (``NewestQueries``). The article's stop button is offered to the chat service first
    (``ChatService.offer``): pressed before its answer begins (Telegram tells the bot the
    article was sent only afterwards, if at all), it stops that answer ahead. An answer
    Telegram refused or a newer query dropped is withdrawn.
    """
    question = asked_words(query.query)
    link = await editors.deep_link("inline")
    tag = None
    if question:
        tag = new_tag()
        result = article(texts, tag, question)
    else:
        result = InlineQueryResultArticle(
            id=HELP_RESULT,
            title=texts("inline_help_title"),
            description=texts("inline_help_description"),
            input_message_content=InputTextMessageContent(message_text=texts("inline_help")),
            reply_markup=link_keyboard(texts("open_bot"), link),
        )
    send = query.answer(  # built, not sent: ``newest`` sends it
        [result],
        cache_time=0,
        is_personal=True,
        button=InlineQueryResultsButton(text=texts("open_bot"), start_parameter="inline"),
    )
    if tag is not None:
        chat.offer(query.from_user.id, tag)
    try:
        sent = await newest.answer(query.from_user.id, event_update.update_id, send)
    except QUERY_GONE as exc:  # answered too late (the query expired): nothing to do
        log.info("inline.query_refused", error=describe(exc))
        sent = False
    if tag is not None and not sent:  # (one whose fate is unknown stays: it may show)
        chat.withdraw(tag)


async def on_chosen_result(
    result: ChosenInlineResult,
    event_update: Update,
    texts: Texts,
    chat: ChatService,
    editors: Editors,
) -> None:
    """The user sent the article: stream the answer into it.

    The message is known to show the answer before the asker's settings are read: a failure
    to read them is told there by the errors router, never leaving the placeholder waiting.
    A result whose id Veil cannot have given (``stop_tag_fits``) is refused, logged alone.
    """
    question = asked_words(result.query)
    if result.result_id == HELP_RESULT or result.inline_message_id is None or not question:
        return
    if not stop_tag_fits(result.result_id):
        log.warning("inline.result_refused", id_bytes=len(result.result_id.encode()))
        return
    if not editors.answered.first(("inline", result.inline_message_id)):
        return  # delivered again: it is answered (or being answered) already
    user = result.from_user
    shown = Shown(user.id, inline_message_id=result.inline_message_id)
    editors.showing.remember(event_update.update_id, shown)
    asked = Question(
        user.id,
        user.language_code,
        question,
        stop_tag=result.result_id,
        keep_history=await chat.keeps_inline_history(user.id),
        reads_history=False,  # posted where others read it: the private turns stay private
    )
    await answer_inline(result.inline_message_id, event_update, asked, texts, chat, editors)


def stop_tag_fits(result_id: str) -> bool:
    """Whether ``result_id`` can be the tag of the stop button under its answer.

    Telegram echoes only the ids Veil gave its results (``new_tag``), but a hostile or buggy
    client or server may send any: one over the 64 bytes of a button's callback data (with the
    ``StopAnswer`` prefix), or holding its ``:`` separator, cannot be packed, and answering it
    raised, its apology edited into a message Veil never offered.
    """
    try:
        StopAnswer(tag=result_id).pack()
    except ValueError:
        return False
    return True


async def on_guest_message(
    message: Message, event_update: Update, texts: Texts, chat: ChatService, editors: Editors
) -> None:
    """Summoned where the bot is not a member: answer through answerGuestQuery.

    Its stop button is offered to the chat service before the message goes up
    (``ChatService.offer``), so its asker's press before the answer begins stops it ahead;
    withdrawn if Telegram does not post it.
    """
    bot = message.bot
    if message.guest_query_id is None or message.from_user is None or bot is None:
        return
    if not editors.answered.first(("guest", message.guest_query_id)):
        return  # delivered again: it is answered (or being answered) already
    try:
        me = await bot.me()  # asked of Telegram when first needed (a webhook bot)
    except TELEGRAM_LATER as exc:  # its one answer is the only way to tell the asker
        log.warning("inline.guest_unknown_bot", error=describe(exc))
        await guest_notice(message.guest_query_id, texts("error_telegram"), bot)
        return
    if message.via_bot is not None and message.via_bot.id == me.id:
        # Veil's own inline answer, posted where it is not a member, naming it (its question
        # shown above it): answered already as the chosen result, not asked and charged again.
        log.info("inline.guest_via_bot", own=True)
        return
    refused = _refused(message)
    if refused is not None:
        await guest_notice(message.guest_query_id, texts(refused), bot)
        return
    text = message.text or message.caption or ""
    entities = message.entities or message.caption_entities or []
    ours = [entity for entity in entities if names_veil(entity, text, me)]
    question = without_mentions(text, ours)
    question = "" if shows_nothing(question) else question  # trimmed, its indentation kept
    context, replied = one_off(replied_context(message, me.id, texts.catalogs))
    if not question and not context and replied is None:
        question = texts("guest_empty_question")
    user = message.from_user
    tag = new_tag()
    chat.offer(user.id, tag)
    try:
        sent = await bot.answer_guest_query(
            message.guest_query_id, result=article(texts, tag, question or "…")
        )
    except QUERY_GONE as exc:  # answered too late (the query expired): nothing to do
        chat.withdraw(tag)
        log.info("inline.guest_query_refused", error=describe(exc))
        return
    asked = Question(
        user.id,
        user.language_code,
        question or texts("guest_reply_question"),
        stop_tag=tag,
        context=context,
        keep_history=False,
        replied=replied,
    )
    await answer_inline(
        sent.inline_message_id, event_update, asked, texts, chat, editors, posted_in=message.chat.id
    )


def _refused(message: Message) -> str | None:
    """The key of the notice a summons Veil does not answer gets (logged), or None.

    Refused: one sent as a chat, a forward, another bot's inline result, one in a caption, one
    replying to unseen media (``guest_notice`` says why each).
    """
    if message.sender_chat is not None:
        log.info("inline.guest_asked_as_chat")
        return "group_ask_as_yourself"
    if forwarded(message):  # its mention was written for another chat, not by the forwarder
        log.info("inline.guest_forward_refused")
        return "guest_forwarded"
    if message.via_bot is not None:
        # Another bot's inline result that names Veil (a second Veil asked "what is @veil?"):
        # its words are that bot's, not a question the member put to Veil, as in a group.
        log.info("inline.guest_via_bot", own=False)
        return "guest_via_bot"
    if message.text is None:  # a caption: the model would answer blind to what it is under
        log.info("inline.guest_media_refused", replied=False)
        return "guest_media"
    if replies_to_unseen(message, files_read=False):  # "what is this?" under a photo
        log.info("inline.guest_media_refused", replied=True)
        return "guest_replied_media"
    return None


async def on_unread_summons(message: Message, bot: Bot, texts: Texts, editors: Editors) -> None:
    """A summons Veil could not read (``handlers.replies.unread``): its one answer says so.

    Once a summons, as ``on_guest_message`` answers one (Telegram may deliver it again).
    """
    if message.guest_query_id is None:
        return
    if not editors.answered.first(("guest", message.guest_query_id)):
        return  # delivered again: told already
    log.info("unread.told", where="guest")
    await guest_notice(message.guest_query_id, texts("unread"), bot)


async def guest_notice(guest_query_id: str, text: str, bot: Bot) -> None:
    """A notice for an answer: to a summons sent as a chat, asking about unseen media, unread.

    A summons sent as a chat (an anonymous admin, a channel) comes from a pseudo-user that
    stands for everyone who posts so (as in a group, ``handlers.groups.telling.ask_as_yourself``):
    nobody whose own credit an answer could be charged to. One in a caption would be answered
    blind to the photo or file it is under (``handlers.groups`` refuses it the same way). A
    forward that mentions Veil is someone else's words, written for another chat: in a group it
    is not addressed to Veil (``handlers.groups.addressed``), here the forwarder is told so.
    """
    notice = InlineQueryResultArticle(
        id=new_tag(),
        title=shortened(text, TITLE_CHARS),
        input_message_content=InputTextMessageContent(message_text=text),
    )
    try:
        await bot.answer_guest_query(guest_query_id, result=notice)
    except QUERY_GONE as exc:  # answered too late (the query expired): nothing to do
        log.info("inline.guest_query_refused", error=describe(exc))


async def answer_inline(  # noqa: PLR0913, PLR0917 -- where, what, and the handler's parts
    inline_message_id: str,
    update: Update,
    asked: Question,
    texts: Texts,
    chat: ChatService,
    editors: Editors,
    *,
    posted_in: int | None = None,
) -> None:
    """Start streaming the answer to ``asked`` into an inline message.

    ``posted_in``: the chat a guest answer was posted in (its edits take that chat's pace).

    The answer runs detached from the update (``ChatService.start``) and tells its own failure
    in the inline message (``_Followup``); a message deleted meanwhile stops it (the sink's
    ``gone``), as its stop button would. Until it has started, the update is known to show
    it there, so a failure before (the asker busy with another answer) is told in place by the
    errors router.
    """
    shown = Shown(asked.user_id, inline_message_id=inline_message_id, chat_id=posted_in)
    editors.showing.remember(update.update_id, shown)
    header = texts("inline_header", question=shortened(asked.prompt, HEADER_CHARS))
    asked = replace(asked, shown_in=Outbound.inline(inline_message_id, header))  # for a restart
    sink = await editors.inline(
        inline_message_id,
        header=header,
        stop_markup=stop_keyboard(texts, str(asked.stop_tag)),
        more_label=texts("read_whole"),
        gone=partial(chat.cancel, asked.user_id, stop_tag=asked.stop_tag),
        posted_in=posted_in,
    )
    chat.start(asked, sink, _Followup(sink, texts, editors, shown, chat))
    editors.showing.pop(update.update_id)


@dataclass(frozen=True, eq=False)
class _Followup:
    """An inline (or guest) answer's end: its note, or its failure told in the message."""

    sink: EditedAnswer
    texts: Texts
    editors: Editors
    shown: Shown
    chat: ChatService

    async def answered(self, answer: Answer) -> None:
        """Say so when it was stopped before a word, when the model said nothing, and when it cut.

        Never a placeholder left with its stop button. The final edit is waited for first, if
        a flood wait outlasted the answer.
        """
        shown = await self.sink.finished()
        if answer.text:
            await self.chat.deliveries.delivered(answer.request_id, shown=shown)
        if not answer.text:
            await self.sink.say(self.texts("cancelled" if answer.stopped else "error_backend"))
        elif answer.finish_reason == "length" and not answer.stopped:
            await self.sink.note(self.texts("answer_cut_here"))

    async def failed(self, error: Exception) -> None:
        """As the errors router would: a short notice in the inline message, a bug's too.

        The notice goes under the part of the answer already shown, if any, else in the
        placeholder's place; either way the stop button goes. A bug is logged as the errors
        router logs one (``handler_failed``) and told as "something went wrong".
        """
        if isinstance(error, VeilError):
            await tell_outside(error, self.texts, self.editors, self.shown, None, answer=self.sink)
        else:
            await apologise_outside(
                error, self.texts, self.editors, self.shown, None, answer=self.sink
            )


async def on_stop(  # noqa: PLR0913, PLR0917 -- what the press needs, as aiogram hands it
    query: CallbackQuery,
    callback_data: StopAnswer,
    texts: Texts,
    chat: ChatService,
    editors: Editors,
    kit: GroupStops,
) -> None:
    """The stop button: stops the answer for its asker; anyone else gets a short notice.

    The press is carried out first; Telegram failing its answer (the toast) is a log line,
    not an apology in the presser's private chat for a press that did what it should.

    A button no answer in progress stands behind says the answer has ended (not that it is
    someone else's). One under a group's placeholder left behind is that placeholder's only
    way out: Telegram took it, but the bot never learned which message it was (the send
    timed out after Telegram took it, or its reply named none), and it stood with "⏳ …" and
    a stop button that did nothing, beside the answer or the failure told. The press names
    the message: it is edited to say nothing more comes there (``_settle_left``). A group
    answer whose placeholder is still going up (``GroupStops``) has not ended: it was
    edited so just before its answer streamed in, and its asker, told it had ended, was
    answered in full and charged.
    """
    tag, user_id = callback_data.tag, query.from_user.id
    # A group answer whose placeholder is going up (no model asked yet: the chat service
    # knows none under the button) has not ended: its asker withdraws it, as ``/stop`` then.
    group = None if query.message is None else query.message.chat.id
    behind = None if group is None else kit.stop_pressed(group, tag, user_id)
    opening = behind == "opening"
    stopped = behind == "stopped" or (not opening and chat.cancel(user_id, stop_tag=tag))
    ended = not stopped and not opening and not chat.shows(tag)
    told = "stopping" if stopped else "stop_ended" if ended else "stop_not_yours"
    try:
        await query.answer(texts(told))
    except TELEGRAM_LATER as exc:
        log.info("inline.stop_unanswered", error=type(exc).__name__, stopped=stopped)
    if ended and behind is None:  # (an answer telling its end says it in its message)
        await _settle_left(query, texts, editors)


async def _settle_left(query: CallbackQuery, texts: Texts, editors: Editors) -> None:
    """Say in a group's placeholder left behind that nothing more comes there; else nothing.

    Only a message that still reads as a placeholder ("⏳ …", in any language): an answer's
    message whose stop button a late press found (its final edit not made yet) keeps its
    text. An inline message's text is not in the press: it is left as it is.
    """
    message = query.message
    if not isinstance(message, Message) or message.chat.type not in {"group", "supergroup"}:
        return
    catalogs = texts.catalogs
    left = {catalogs.lookup(language, "group_placeholder") for language in catalogs.languages}
    if message.text not in left:
        return
    log.info("inline.placeholder_settled")
    await editors.settle_left(message.chat.id, message.message_id, texts("placeholder_left"))


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.inline_query.register(partial(on_inline_query, newest=NewestQueries()))
    router.chosen_inline_result.register(on_chosen_result)
    router.guest_message.register(on_unread_summons, unread, F.guest_query_id)  # first
    router.guest_message.register(on_guest_message, F.guest_query_id)
    router.callback_query.register(on_stop, StopAnswer.filter())
    return router
