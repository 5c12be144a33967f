"""Private chat: a text in, a streamed answer out; /cancel, /new, Retry, Continue, the stop button.

A small text file (``handlers.documents``) is a question too: its text, then its caption (a
text sent while an album of files gathers is its question: ``Files.on_text``). A message
edited after it was sent gets a note, once, that it was answered as sent (``EditNotes``).

An answer the model cut at its length limit is followed by a short note with a Continue button,
which asks the model to go on in the same conversation (a new answer, billed as any).

Where the bot has topics in private chats (getMe's ``has_topics_enabled``, Bot API 9.3+), each
topic is a conversation of its own: a message in a topic is answered there (drafts, the answer,
its notes and buttons) from that topic's history, and ``/new`` opens a new topic. A message in
the chat itself continues the user's active conversation, as without topics. A topic the bot
does not know (made by the user, or its conversation erased) starts afresh, and says so once.
After the first answer of a conversation the model names it; in a topic the topic is renamed.

An answer runs detached from the update that asked for it (``ChatService.start``): the handler
checks, copies the few plain fields the answer needs (ids, topic, language, the text) and
returns, so aiogram's update and its handler chain are freed while the answer streams. A failure
inside the answer is told as the errors router tells one (``handlers.failures``), in the
answer's chat and topic. An answer a restart cut off (its hold recovered, nothing charged) is
told once the bot runs again (``tell_interrupted``), in the same chat and topic.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from aiogram import F, Router
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramBadRequest

from common.content import UNSEEN
from common.thought import MARK, QUOTED
from handlers import documents
from handlers.callbacks import Continue, Retry, RetryBefore
from handlers.commands import TextCommand, forwarded, in_caption
from handlers.failures import ENDING_NOTES, noted
from handlers.reading import asked_text, veils, words_of
from handlers.replies import (
    EDITS_REMEMBERED,
    TELEGRAM_LATER,
    continue_keyboard,
    pressed_in_private,
    replies_to_unseen,
    retry_keyboard,
    topic_of,
    unread,
    went_out,
)
from services.chat import CONTINUE_PROMPT, CUT
from services.documents import TextFile
from services.errors import AnswerInProgress, InferenceError
from services.fitting import quoted
from services.kept import Firsts
from services.questions import Question, ReasoningSink

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiogram import Bot
    from aiogram.types import (
        CallbackQuery,
        InlineKeyboardMarkup,
        Message,
        MessageGenerationStopped,
        User,
    )

    from common.texts import Catalogs, Texts
    from handlers.failures import Failures
    from handlers.sinks import Drafts, DraftTarget
    from models.outbox import Finish, Progress
    from services.chat import ChatService
    from services.credit import Credit
    from services.questions import Answer

MAX_COMMAND_SHOWN = 97  # "/" + 64 characters + "@" + a 32-character bot name
PRESSES_REMEMBERED = 10_000  # messages whose Retry or Continue was pressed, newest kept
# Seconds a question's update waits for its answer to start or be refused (its credit held;
# the previous answer's final delivery first, a flood wait's minute at most): beyond that the
# next update would go in anyway (``bot.order``'s patience).
START_PATIENCE = 90.0

log = structlog.get_logger("veil.chat")


async def answer_prompt(  # noqa: PLR0913, PLR0917 -- where to answer, what, and with what
    bot: Bot,
    chat: ChatService,
    drafts: Drafts,
    texts: Texts,
    failures: Failures,
    answering: Answering,
    user: User,
    prompt: str,
    *,
    thread_id: int | None = None,
    replied: str | None = None,
    continues: bool = False,
    document: TextFile | None = None,
    retried: str | None = None,
    refused: Callable[[], None] | None = None,
    began: Callable[[], Awaitable[None]] | None = None,
    reply_to: int | None = None,
) -> bool | None:
    """Start streaming the answer to ``prompt`` into the user's private chat (id: the user's).

    In topic ``thread_id`` when given, from that topic's conversation; ``replied`` is the text
    of the message it replies to (``Question.replied``); ``continues``: it asks the model to go
    on with its cut answer (``Question.continues``); ``document``: the text file ``prompt``
    asks about (``Question.document``); ``retried``: the key of the failed question a Retry
    button asks again (``Question.retried``); ``reply_to``: the message that asked it, which
    the answer replies to if it is sent again (``Question.reply_to``). The answer runs detached
    from the update (``ChatService.start``): this returns once it has started (its credit
    held, the model asked) or been refused and the refusal told, so the update's objects are
    not kept while it streams, and the user's next update (which waits for this one,
    ``bot.order``) is not answered before the refusal. One that waits for the user's previous
    answer to finish (``Answering``) is not waited for. ``AnswerInProgress`` (the user has an
    answer in progress) is raised here, to the errors router. What follows the answer, and
    its failure, is ``_Followup``'s. False when it was refused before the model was asked (no
    credit, say: a Retry or Continue button then stays), True otherwise, None when not waited
    for. ``refused`` is called when it was refused before the model was asked, once told (a
    press's: its button works again), also where that comes after this returned; ``began``
    once the answer, asked after this returned (None), has ended (a press's: its button off).
    """
    sink = drafts(user.id, thread_id=thread_id)
    starting = _Starting(sink)
    question = Question(
        user.id,
        user.language_code,
        prompt,
        stop_tag=sink.draft_id,
        thread_id=thread_id,
        private=True,
        replied=replied,
        continues=continues,
        document=document,
        retried=retried,
        reply_to=reply_to,
    )
    behind = answering.running(user.id)  # then it waits for that answer to be written first
    followup = _Followup(
        bot,
        chat,
        texts,
        failures,
        sink,
        user.id,
        thread_id,
        starting.settled,
        answering,
        refused,
        began if behind else None,
    )
    chat.start(question, starting, followup)
    answering.began(user.id)
    if behind:
        return None
    with contextlib.suppress(TimeoutError):  # a stuck start holds its update only so long
        async with asyncio.timeout(START_PATIENCE):
            await starting.settled.wait()
    return starting.begun or not starting.settled.is_set()


class Answering:
    """How many private-chat answers each user has running (``answer_prompt``'s, not ended).

    A question asked while the user's previous answer is still finishing (its stream ended, its
    charge and history being written, a flood wait on its final message) waits for that answer
    inside ``ChatService``. Its update does not wait for it to start: a stop, a /forget pressed
    meanwhile would otherwise wait until the model was asked, and charged, first.
    """

    def __init__(self) -> None:
        self._running: dict[int, int] = {}

    def running(self, user_id: int) -> bool:
        """Whether ``user_id`` has an answer running."""
        return user_id in self._running

    def began(self, user_id: int) -> None:
        """An answer of ``user_id``'s started."""
        self._running[user_id] = self._running.get(user_id, 0) + 1

    def ended(self, user_id: int) -> None:
        """An answer of ``user_id``'s ended (its followup is done)."""
        left = self._running.pop(user_id, 0) - 1
        if left > 0:
            self._running[user_id] = left


@dataclass(eq=False, slots=True)
class _Starting:
    """The sink an answer streams into, seen from the update that asked: has it started?

    ``settled`` is set when the model is asked (``begin``: the credit is held); a refusal, or
    any failure before that, sets it once told (``_Followup.failed``). "Started" is no later
    than that: an answer never holds its chat's next update while it streams.
    """

    sink: DraftTarget
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    begun: bool = False  # the model was asked (else, once ``settled``: refused, and told)

    async def begin(self) -> None:
        """The model was asked: the update that asked is done."""
        self.begun = True
        self.settled.set()
        await self.sink.begin()

    async def append(self, delta: str) -> None:
        """The next piece of the answer."""
        await self.sink.append(delta)

    async def reason(self, delta: str) -> None:
        """The next piece of the model's thinking, where the sink shows it."""
        if isinstance(self.sink, ReasoningSink):
            await self.sink.reason(delta)

    async def complete(self, text: str) -> None:
        """Deliver the final answer."""
        await self.sink.complete(text)

    async def abort(self) -> None:
        """The answer failed or produced nothing."""
        await self.sink.abort()

    @property
    def progress(self) -> Progress:
        """The final answer's messages Telegram took so far (``CountingSink``'s)."""
        return self.sink.progress

    def recording(self, record: Callable[[Progress], Awaitable[None]]) -> None:
        """Have ``record`` told each message of the final answer Telegram takes."""
        self.sink.recording(record)

    def kept(self) -> None:
        """Not sent now, its row kept with the charge: the outbox sends it."""
        self.sink.kept()


@dataclass(frozen=True, eq=False, slots=True)
class _Followup:
    """A private-chat answer's end: its notes and its conversation's name, or its failure.

    Plain fields only (ids, the sink, shared services): nothing of the update that asked.
    """

    bot: Bot
    chat: ChatService
    texts: Texts
    failures: Failures
    sink: DraftTarget
    user_id: int
    thread_id: int | None
    started: asyncio.Event  # set once it is told: the update that asked may end
    answering: Answering
    refused: Callable[[], None] | None = None  # refused before the model was asked: told
    began: Callable[[], Awaitable[None]] | None = None  # asked, not waited for: once it ended

    async def answered(self, answer: Answer) -> None:
        """Say so when it was stopped before a word, and when the model cut it (Continue).

        An answer about a file the model read only the start of says how much of it that was.

        The first answer of a conversation is then followed by naming it (``name_conversation``),
        and in a topic the topic is renamed.
        """
        try:
            await self._follow(answer)
        except (TelegramAPIError, ClientDecodeError) as exc:
            # The answer went out; a note under it (or the topic's new name) did not. That is
            # no failure of the answer's: no apology for an answer the user has.
            log.warning("chat.note_unsent", user_id=self.user_id, error=type(exc).__name__)
        finally:
            await self._ended_press()
            self.answering.ended(self.user_id)

    async def _follow(self, answer: Answer) -> None:
        texts, sink = self.texts, self.sink
        if answer.stopped and not answer.text:
            await sink.say(texts("cancelled"))
        elif not answer.text:  # the model gave no answer (not charged): Retry may get one
            await noted(sink, texts("error_backend"), retry_keyboard(texts, answer.retry))
        elif answer.finish_reason == CUT and answer.text and not answer.stopped:
            await sink.note(texts("answer_cut"), continue_keyboard(texts, answer.request_id))
            await sink.note_taken()  # counted in its row: the last note deletes it
        if answer.file_read is not None and answer.text:
            await sink.say(texts("document_part", percent=answer.file_read))
            await sink.note_taken()
        if answer.naming is not None:
            title = await self.chat.name_conversation(answer.naming)
            if title is not None and self.thread_id is not None:
                await rename_topic(self.bot, self.user_id, self.thread_id, title)

    async def _ended_press(self) -> None:
        """The press that asked it, not waited for (``began``): its button off, if it can be."""
        if self.began is not None:
            with contextlib.suppress(TelegramAPIError, ClientDecodeError):  # the answer is told
                await self.began()

    async def failed(self, error: Exception) -> None:
        """As the errors router would: the error's text (and Retry) in the answer's topic.

        When the part that arrived before the failure went out as the answer (it is paid for
        and stays), the note under it says the answer broke off there instead. When Telegram
        could not take the final message now but its row went with the charge (``kept``),
        the user is told it will follow, not to send the question again.
        """
        asked = self.started.is_set()  # set at ``_Starting.begin``: the model was asked
        try:
            if isinstance(error, InferenceError) and self.sink.completed:
                await self.failures.broke_off(error, self.texts, self.sink)
                return
            if self.sink.left_to_outbox and isinstance(error, TELEGRAM_LATER):
                # Charged, and its row kept: it follows; asked again, it would be paid twice.
                await self.failures.apologise(
                    error, self.texts, self.user_id, self.thread_id, kept=True
                )
                return
            await self.failures.report(error, self.texts, self.user_id, self.thread_id)
        finally:
            if not asked and self.refused is not None:
                self.refused()
            elif asked:
                await self._ended_press()
            self.started.set()
            self.answering.ended(self.user_id)


async def note_ending(sink: DraftTarget, texts: Texts, request_id: str, finish: Finish) -> None:
    """Under a private answer sent again, the notes (and button) the live one had under it.

    Cut at its length limit: Continue (``_Followup``); broken off: the note saying where and
    why, with Retry where its question was kept (``Failures.broke_off``); then, where the model
    read only the start of the question's file, how much (``_Followup``). A whole answer: none.
    Those Telegram took before (``sink.progress.notes``) are not sent again, and each one taken
    is counted in the answer's row (``DraftTarget.note_taken``), as its messages are: a bot
    killed before the row is deleted shows none of them twice. One Telegram refuses for good
    (a 400: its button, say) is counted too, and the next has its chance; a bot blocked or a
    Telegram down now stops here (the caller's).
    """
    notes: list[tuple[str, InlineKeyboardMarkup | None]] = []
    if finish.ending == "cut":
        notes.append((texts("answer_cut"), continue_keyboard(texts, request_id)))
    elif finish.ending is not None:
        markup = None if finish.ending == "window_full" else retry_keyboard(texts, finish.retry)
        notes.append((texts(ENDING_NOTES[finish.ending]), markup))
    if finish.file_read is not None:
        notes.append((texts("document_part", percent=finish.file_read), None))
    for text, markup in notes[sink.progress.notes :]:
        try:
            await noted(sink, text, markup)
        except TelegramBadRequest as exc:  # this note only: the next one may go
            log.warning("chat.note_refused", error=type(exc).__name__)
        await sink.note_taken()


async def rename_topic(bot: Bot, chat_id: int, thread_id: int, title: str) -> None:
    """Give the topic its conversation's title; Telegram refusing is logged, nothing more."""
    try:
        await bot.edit_forum_topic(chat_id=chat_id, message_thread_id=thread_id, name=title)
    except (TelegramAPIError, ClientDecodeError) as exc:  # a proxy's page: not renamed either
        log.warning("chat.topic_rename_failed", error=type(exc).__name__)


async def topics_enabled(bot: Bot) -> bool:
    """Whether the bot has topics in private chats (getMe, asked once and remembered)."""
    return bool((await bot.me()).has_topics_enabled)


async def cmd_cancel(message: Message, texts: Texts, chat: ChatService) -> None:
    """Stop the answer being written; what was written so far is kept (and charged).

    The user's answer may be in a group, or an inline or guest one: it stops there, and the
    private chat, where nothing of it shows, says so (it had said nothing, as if unheard).
    """
    user_id = message.from_user.id if message.from_user else message.chat.id
    elsewhere = chat.streams_elsewhere(user_id)
    if not chat.cancel(user_id):
        await message.answer(texts("nothing_to_cancel"))
    elif elsewhere:
        await message.answer(texts("cancelled_elsewhere"))


async def cmd_new(message: Message, bot: Bot, texts: Texts, chat: ChatService) -> None:
    """Start a fresh conversation: in a new topic where the bot has topics, else in the chat.

    A topic Telegram will not create (topics turned off since the bot started, say) falls
    back to a fresh conversation in the chat itself.
    """
    user = message.from_user
    if user is None:
        return
    if await topics_enabled(bot):
        try:
            topic = await bot.create_forum_topic(chat_id=user.id, name=texts("topic_name"))
        except TelegramAPIError as exc:
            log.warning("chat.topic_create_failed", error=type(exc).__name__)
        else:
            thread_id = topic.message_thread_id
            await chat.new_conversation(user.id, user.language_code, thread_id=thread_id)
            await bot.send_message(user.id, texts("topic_new"), message_thread_id=thread_id)
            await message.answer(texts("topic_opened"))
            return
    await chat.new_conversation(user.id, user.language_code)
    await message.answer(texts("new_conversation"))


async def on_stopped_generation(event: MessageGenerationStopped, chat: ChatService) -> None:
    """The draft's stop button: stops the answer in that draft only (a late press, nothing).

    In a private chat the chat id is the user's id.
    """
    chat.cancel(event.chat.id, stop_tag=event.draft_id)


async def drop_button(bot: Bot, query: CallbackQuery) -> None:
    """Take the pressed button off its message in the user's private chat, once used."""
    if query.message is not None:
        with contextlib.suppress(TelegramBadRequest):  # already without a button: fine
            await bot.edit_message_reply_markup(
                chat_id=query.from_user.id,
                message_id=query.message.message_id,
                reply_markup=None,
            )


class Presses:
    """The Retry and Continue buttons pressed already (their messages), so each asks once.

    A double tap sends two presses before the bot redraws the message without its button. The
    second is handled once the first's answer has started; by then that answer may have
    failed again and left a newer question for Retry, which the old button's second press
    took: two answers to one press. A button's message is remembered at its first press (and
    let go again when that press asked nothing: ``AnswerInProgress``, or its answer refused
    before the model was asked, also once the user's previous answer was written), the newest
    ``size``.
    """

    def __init__(self, size: int = PRESSES_REMEMBERED) -> None:
        self._pressed: Firsts[tuple[int, int]] = Firsts(size)

    def first(self, query: CallbackQuery) -> bool:
        """Whether this is the first press of the button's message (it is remembered now)."""
        key = self._key(query)
        if key is None:
            return True  # a message too old for Telegram to send: the memories below decide
        return self._pressed.first(key)

    def letting_go(self, query: CallbackQuery) -> Callable[[], None]:
        """What to call once the press asked nothing: its button may be pressed again.

        It keeps the message's ids only, not the query: it may be called once the user's
        previous answer is written, long after the update.
        """
        key = self._key(query)

        def again() -> None:
            if key is not None:
                self._pressed.forget(key)

        return again

    @staticmethod
    def _key(query: CallbackQuery) -> tuple[int, int] | None:
        message = query.message
        return None if message is None else (query.from_user.id, message.message_id)


@dataclass(frozen=True, slots=True)
class _Asking:
    """What a Retry or Continue press asks: the prompt, and how it goes to ``answer_prompt``."""

    prompt: str
    document: TextFile | None = None
    continues: bool = False
    retried: str | None = None  # the Retry key it asks again (``Question.retried``)


async def _on_press(  # noqa: PLR0913, PLR0917 -- the press, where to answer, and what it asks
    query: CallbackQuery,
    bot: Bot,
    texts: Texts,
    chat: ChatService,
    drafts: Drafts,
    failures: Failures,
    answering: Answering,
    presses: Presses,
    *,
    take: Callable[[int | None], _Asking | None],
    keep: Callable[[int | None, _Asking], None],
    expired: str,
) -> None:
    """A Retry or Continue press: answered at once, private only, asked once, or "expired".

    ``take`` gives what the press asks (in the topic its button is in), once, or None (said
    ``expired``); ``keep`` gives it back when the user has an answer in progress
    (``AnswerInProgress``, raised on to the errors router) or the answer was refused before
    the model was asked (no credit: told with the packs), and the button then works again,
    also where that refusal comes once the user's previous answer is written (the press does
    not wait for it: the button then stays until its answer has ended, and says ``expired``
    if pressed meanwhile). Else the button is dropped once its answer has started. The press
    is answered at once: the new answer may wait (for a gateway's keys, a hold).
    """
    user = query.from_user
    await query.answer()
    if not pressed_in_private(query):
        return
    thread_id = topic_of(query.message)
    asking = take(thread_id) if presses.first(query) else None
    if asking is None:
        await drop_button(bot, query)
        await bot.send_message(user.id, texts(expired), message_thread_id=thread_id)
        return
    let_go = presses.letting_go(query)
    user_id, message_id = user.id, None if query.message is None else query.message.message_id

    async def began() -> None:
        """Its answer, asked once the previous one was written, has ended: the button off."""
        if message_id is not None:
            with contextlib.suppress(TelegramBadRequest):  # already without a button: fine
                await bot.edit_message_reply_markup(
                    chat_id=user_id, message_id=message_id, reply_markup=None
                )

    def refused() -> None:
        """Asked nothing: the button asks it again (no update objects kept meanwhile)."""
        keep(thread_id, asking)
        let_go()

    try:
        started = await answer_prompt(
            bot,
            chat,
            drafts,
            texts,
            failures,
            answering,
            user,
            asking.prompt,
            thread_id=thread_id,
            continues=asking.continues,
            document=asking.document,
            retried=asking.retried,
            refused=refused,
            began=began,
        )
    except AnswerInProgress:
        refused()
        raise
    # None: it waits behind the previous answer (a refusal then calls ``refused``); False:
    # refused and told (no credit), ``refused`` called: the button asks it once that is mended.
    if started:
        await drop_button(bot, query)


async def on_retry(  # noqa: PLR0913, PLR0917 -- aiogram injects each by name
    query: CallbackQuery,
    callback_data: Retry | RetryBefore,
    bot: Bot,
    texts: Texts,
    chat: ChatService,
    drafts: Drafts,
    failures: Failures,
    answering: Answering,
    presses: Presses,
) -> None:
    """Resend the failed question the button names (in the topic its button is in).

    Each button asks its own failure's question, not the newest; one from before buttons
    named it (``RetryBefore``) asks nothing. A text file's is its whole question, fitted anew
    (its start read if need be); a continuation's goes on with the cut answer, fitted as
    Continue fits it. Kept until an answer to it begins (``ChatService.retry_question``): the
    button works again after a press refused as busy or for want of credit.
    """
    user_id = query.from_user.id
    key = callback_data.question if isinstance(callback_data, Retry) else None

    def take(thread_id: int | None) -> _Asking | None:
        taken = None if key is None else chat.retry_question(user_id, key, thread_id)
        if taken is None:
            return None
        return _Asking(
            taken.prompt, document=taken.document, continues=taken.continues, retried=key
        )

    def keep(_thread_id: int | None, _asking: _Asking) -> None:
        """Nothing to give back: the question stays kept until an answer to it begins."""

    await _on_press(
        query,
        bot,
        texts,
        chat,
        drafts,
        failures,
        answering,
        presses,
        take=take,
        keep=keep,
        expired="retry_expired",
    )


async def on_continue(  # noqa: PLR0913, PLR0917 -- aiogram injects each by name
    query: CallbackQuery,
    callback_data: Continue,
    bot: Bot,
    texts: Texts,
    chat: ChatService,
    drafts: Drafts,
    failures: Failures,
    answering: Answering,
    presses: Presses,
) -> None:
    """Ask the model to go on with a cut answer, if it is still its conversation's latest.

    Its conversation is the topic the button is in (or the chat's own). Kept while the user
    has an answer in progress, or after a press refused for want of credit: it works once
    that is done, unless an answer in the same conversation came meanwhile (any newer answer
    there makes it stale; one in another topic does not).
    """
    user_id, request = query.from_user.id, callback_data.request

    def take(thread_id: int | None) -> _Asking | None:
        taken = chat.take_continuation(user_id, request, thread_id)
        return _Asking(CONTINUE_PROMPT, continues=True) if taken else None

    def keep(thread_id: int | None, _asking: _Asking) -> None:
        chat.keep_continuation(user_id, request, thread_id)

    await _on_press(
        query,
        bot,
        texts,
        chat,
        drafts,
        failures,
        answering,
        presses,
        take=take,
        keep=keep,
        expired="continue_expired",
    )


async def on_text(  # noqa: PLR0913, PLR0917 -- aiogram injects each by name
    message: Message,
    bot: Bot,
    texts: Texts,
    chat: ChatService,
    drafts: Drafts,
    failures: Failures,
    answering: Answering,
    pasted: str | None = None,
) -> None:
    """A question: start its answer, streamed (in its topic, from the topic's conversation).

    A long text the app sent in parts is asked once, whole: ``pasted``, joined by
    ``PasteParts`` (``Pastes``).
    """
    user = message.from_user
    if user is None or message.text is None:
        return
    if replies_to_unseen(message, files_read=True):  # "what is this?" under a photo
        log.info("chat.media_refused", replied=True)
        await message.answer(texts("replied_media"))
        return
    thread_id = topic_of(message)
    prompt = asked_text(message, bot.id, texts.catalogs) if pasted is None else pasted
    forwarded = veils(message, bot.id)  # Veil's own words sent back to it (a forward of them)
    if forwarded and not prompt.strip():  # its thinking alone
        log.info("chat.forwarded_thinking")
        await message.answer(texts("forwarded_thinking"))
        return
    if forwarded and texts.catalogs.says(prompt):  # its notice
        log.info("chat.forwarded_notice")
        await message.answer(texts("forwarded_notice"))
        return
    await opened_topic(message, chat, texts)
    replied = None if message.quote is not None else replied_text(message, bot.id, texts.catalogs)
    prompt = with_quote(message, prompt)
    await answer_prompt(
        bot,
        chat,
        drafts,
        texts,
        failures,
        answering,
        user,
        prompt,
        thread_id=thread_id,
        replied=replied,
        reply_to=message.message_id,
    )


async def opened_topic(message: Message, chat: ChatService, texts: Texts) -> None:
    """Make sure the topic ``message`` was sent in has a conversation; say so if it is fresh."""
    user, thread_id = message.from_user, topic_of(message)
    if user is None or thread_id is None:
        return
    if await chat.open_topic(user.id, user.language_code, thread_id):
        await message.answer(texts("topic_fresh"))


def with_quote(message: Message, text: str) -> str:
    """``text`` after the part of an earlier message the user quoted in replying to it, if any.

    Telegram sends the part a reply quotes (``quote``) with it; the model, which may no longer
    have that message in its context, reads it as a Markdown block quote before the question.
    A reply that quotes nothing adds nothing here: the message it replies to goes with the
    question (``replied_text``), read by the model where its context does not hold it already.
    The quote is of the text as shown: the model's own 💭 in its quotes goes back as it wrote
    it (``QUOTED`` → ``MARK``; a quote carries no spans to tell quote from code by).
    """
    quote = message.quote
    if quote is None or not quote.text.strip():
        return text
    return quoted(quote.text.replace(QUOTED, MARK), text)


def replied_text(message: Message, bot_id: int, catalogs: Catalogs) -> str | None:
    """The text (caption, rich message) of the message ``message`` replies to here, if any.

    A message in a topic replies to the topic's first message without a text: none. None of
    a notice of Veil's (one of ``catalogs``' notices, whole: an inline answer's failure told in
    its place, sent through Veil in this chat): it is no answer of Veil's to quote, as
    ``handlers.replies.replied_context`` reads it for groups and guest summons.
    """
    replied = message.reply_to_message
    if replied is None:
        return None
    text = words_of(replied, bot_id, catalogs)  # a rich answer of Veil's too
    if not text or not text.strip():
        return None
    return None if veils(replied, bot_id) and catalogs.says(text) else text


async def on_topic_created(message: Message, chat: ChatService) -> None:
    """The user made a topic in their app: it is a new conversation (nothing to say yet)."""
    user, thread_id = message.from_user, topic_of(message)
    if user is not None and not user.is_bot and thread_id is not None:
        await chat.open_topic(user.id, user.language_code, thread_id)


async def on_topic_changed(message: Message) -> None:
    """A topic renamed, closed or reopened: a service message that needs no reply."""


def starts_with_command(message: Message) -> bool:
    """Whether the text begins with a command as Telegram marks one (``/word``: not ``/etc/x``).

    Never a forward's: it is asked as a question (``handlers.commands``).
    """
    return not forwarded(message) and any(
        e.type == "bot_command" and e.offset == 0 for e in message.entities or ()
    )


def _command_shown(text: str | None) -> str:
    """The command a text begins with, as it is shown back to the user (cut to a command's most)."""
    return (text or "").split(maxsplit=1)[0][:MAX_COMMAND_SHOWN]


async def on_unknown_command(message: Message, texts: Texts) -> None:
    """A command no router took (a typo, a group's command, an admin's): say where the list is."""
    command = _command_shown(message.text)
    await message.answer(texts("unknown_command", command=command))


async def on_stale_button(query: CallbackQuery, texts: Texts) -> None:
    """A button no router takes (from an older version's message, or data no one sent): say so.

    Unanswered, the button's spinner turns until Telegram gives up, and nothing happens.
    """
    await query.answer(texts("button_stale"))


class EditNotes:
    """Edited messages: each was answered (or refused) as sent; say so under it, once.

    Without this the bot did not ask Telegram for edits at all, and a user who fixed a typo in
    a question waited for an answer to the new text that never came. Told once a message (the
    newest ``size`` remembered, in memory): a second edit, or an ``edited_message`` Telegram
    sends for a change the user did not make ("may at times be triggered by changes to message
    fields ... not actively used by your bot"), gets no second note.
    """

    def __init__(self, size: int = EDITS_REMEMBERED) -> None:
        self._told: Firsts[tuple[int, int]] = Firsts(size)

    async def on_edited(self, message: Message, bot: Bot, texts: Texts) -> None:
        """Tell the user, under their edited message, that the edit was not read.

        Not under Veil's own inline answer posted here (``through_veil``): Veil edited it.
        """
        if message.edit_date is None or await through_veil(message, bot):
            return
        if not self._told.first((message.chat.id, message.message_id)):
            return
        await message.reply(texts("edited"))


class Files:
    """Files sent in the private chat: one alone, or those of an album, asked as one question."""

    def __init__(self, albums: documents.Albums | None = None) -> None:
        self._albums = documents.Albums() if albums is None else albums

    async def on_document(  # noqa: PLR0913, PLR0917 -- aiogram injects each by name
        self,
        message: Message,
        bot: Bot,
        texts: Texts,
        chat: ChatService,
        drafts: Drafts,
        failures: Failures,
        answering: Answering,
        let_next_in: Callable[[], None] | None = None,
    ) -> None:
        """Ask small text files (and their caption) as a question; refuse any other politely.

        Files sent at once (an album) are asked together (``documents.Albums``), or, where
        one of them is not read, none of them: the question may be about that one. A caption
        that begins with a command is the question all the same (the command is not run:
        ``handlers.commands``), and the user is told so under it.
        """
        user, document = message.from_user, message.document
        if user is None or document is None:
            return
        gathered = await self._albums.whole(bot, message, let_next_in)
        if gathered is None:  # it joined the album gathering, whose first file asks it
            return
        files, said = gathered.files, gathered.said
        if await _refused(files, texts):
            if said:  # the question typed after the files, about them: not asked alone either
                log.info("chat.album_text_unasked", texts=len(said))
                await files[0].message.answer(texts("document_album_text_unasked"))
            return
        first = files[0].message
        captions = [*(read.message.caption for read in files), *said]
        caption = "\n\n".join(c for c in captions if c and c.strip()) or None
        asked = TextFile.together(_named(files), caption)
        await opened_topic(first, chat, texts)
        await answer_prompt(
            bot,
            chat,
            drafts,
            texts,
            failures,
            answering,
            user,
            asked.question(),
            thread_id=topic_of(first),
            document=asked,
            reply_to=first.message_id,
        )
        for read in files:
            if in_caption(read.message):  # not run (``handlers.commands``): or it seems ignored
                command = _command_shown(read.message.caption)
                await message.answer(texts("document_caption_command", command=command))

    async def on_text(  # noqa: PLR0913, PLR0917 -- aiogram injects each by name
        self,
        message: Message,
        bot: Bot,
        texts: Texts,
        chat: ChatService,
        drafts: Drafts,
        failures: Failures,
        answering: Answering,
        pasted: str | None = None,
    ) -> None:
        """A text: the question of the user's album still gathering, else asked (``on_text``).

        Only the user's own words join an album (``documents.Albums.said``): a reply (but to
        one of the album's files), a quote or a forward of Veil's answer is asked as ever,
        with what it replies to.
        """
        if message.text is not None and not veils(message, bot.id):
            text = message.text if pasted is None else pasted
            if text.strip() and self._joined(message, text):
                log.info("chat.album_text_joined")
                return
        await on_text(message, bot, texts, chat, drafts, failures, answering, pasted)

    async def on_cancel(self, message: Message, texts: Texts, chat: ChatService) -> None:
        """/cancel (or /stop): the answer being written stops (``cmd_cancel``), and the album.

        An album still gathering is not yet an answer being written: /cancel sent right after
        the files was told "nothing is being written", and the files were asked (and charged)
        a second later. Now they are not: "Stopped.".
        """
        if self._albums.cancel(message.chat.id, topic_of(message)):
            log.info("chat.album_cancelled")
            user_id = message.from_user.id if message.from_user else message.chat.id
            chat.cancel(user_id)  # an answer being written too, if one is
            await message.answer(texts("cancelled"))
            return
        await cmd_cancel(message, texts, chat)

    def _joined(self, message: Message, text: str) -> bool:
        """Whether ``text`` joined the user's album gathering in its chat and topic.

        A reply to one of the album's own files ("and this one?") joins it too, after that
        file's name quoted: asked on its own, it was answered blind to the files, before them,
        and the album refused as "still writing the previous answer".
        """
        replied = message.reply_to_message  # in a topic: its first message, or what it replies to
        chat, topic = message.chat.id, topic_of(message)
        if replied is None or replied.forum_topic_created is not None:
            return self._albums.said(chat, topic, text)
        document = replied.document
        if document is None:
            return False
        named = quoted(document.file_name or "file", text)
        return self._albums.said(chat, topic, named, replied.message_id)


async def _refused(files: list[documents.Read], texts: Texts) -> bool:
    """Whether any of ``files`` was not read: then each reason is told, once.

    For an album, the user is told too that none of it was asked.
    """
    told: set[str] = set()
    for read in files:
        if not isinstance(read.text, documents.Refused):
            continue
        size = None if read.message.document is None else read.message.document.file_size
        log.info("chat.document_refused", reason=read.text.reason, size=size)
        if read.text.key not in told:
            told.add(read.text.key)
            await read.message.answer(texts(read.text.key, kb=documents.DOCUMENT_MOST // 1024))
    if told and len(files) > 1:
        await files[0].message.answer(texts("document_album_refused"))
    return bool(told)


def _named(files: list[documents.Read]) -> list[tuple[str, str]]:
    """The files read, each its name and text."""
    named = []
    for read in files:
        document = read.message.document
        if isinstance(read.text, str):
            named.append(((document and document.file_name) or "file", read.text))
    return named


async def on_unread(message: Message, texts: Texts) -> None:
    """A message Veil could not read (``handlers.replies.unread``): say so, in its topic."""
    log.info("unread.told", where="private")
    await message.answer(texts("unread"))


async def through_veil(message: Message, bot: Bot) -> bool:
    """Whether ``message`` was posted through Veil's inline mode (``via_bot``): in its own chat.

    The user asked there as anywhere with ``@veil question``: the message is the inline
    answer's, already being answered into (``handlers.inline``); only Veil edits it.
    """
    return message.via_bot is not None and message.via_bot.id == bot.id


async def on_own_inline(message: Message) -> None:
    """Veil's inline answer posted in its own chat: no question of its own, nothing to say.

    Asked, its placeholder ("❓ question ⏳ Veil is writing…") was a second question: told
    "still writing the previous answer" while the inline one streamed, charged once more after.
    """


def sent_unseen(message: Message) -> bool:
    """Whether the user sent something Veil cannot read (a photo, a poll, a GIF…).

    Not a service message: the user pinned a message, set the chat's auto-delete timer or
    wallpaper, let Veil write to them. Those are what they did to the chat, nothing to answer;
    told "describe it in words", they were asked to describe a pin.
    """
    return any(getattr(message, kind, None) is not None for kind in UNSEEN)


async def on_unsupported(message: Message, texts: Texts) -> None:
    """Photos, voice, stickers, locations, GIFs…: say what is supported (text, and text files)."""
    await message.answer(texts("unsupported"))


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(on_unread, unread)  # first: nothing else may take what stands for it
    router.message.register(on_own_inline, through_veil)  # answered as the inline one it is
    files = Files()  # a text sent while the user's album gathers is its question; /cancel drops it
    # /stop too: what users type to stop an answer (it was "I don't know /stop" mid-answer).
    router.message.register(files.on_cancel, TextCommand("cancel", "stop", ignore_case=True))
    router.message.register(cmd_new, TextCommand("new", ignore_case=True))
    router.stopped_message_generation.register(on_stopped_generation)
    router.callback_query.register(on_retry, Retry.filter())
    router.callback_query.register(on_retry, RetryBefore.filter())
    router.callback_query.register(on_continue, Continue.filter())
    router.message.register(on_unknown_command, F.text, starts_with_command)
    router.message.register(files.on_text, F.text)
    router.message.register(on_topic_created, F.forum_topic_created)
    router.message.register(
        on_topic_changed, F.forum_topic_edited | F.forum_topic_closed | F.forum_topic_reopened
    )
    # A GIF comes as a document too (the Bot API sets both for it): no file to read, unsupported.
    router.message.register(files.on_document, F.document, ~F.animation)
    router.message.register(on_unsupported, ~F.text, sent_unseen)  # a service message: silence
    router.edited_message.register(EditNotes().on_edited, F.chat.type == "private")
    router.callback_query.register(on_stale_button)  # last of the last router: what is left
    return router


async def tell_interrupted(bot: Bot, catalogs: Catalogs, credit: Credit) -> int:
    """Tell each user whose private-chat answer a restart cut off, once; how many were told.

    Each notice is claimed before it is sent (at most once: not by two bot processes, not
    again after a crash right after sending). Stops at the first call Telegram cannot take now
    (unreachable, a flood wait past the retries, a 5xx, a reply that is not the Bot API's): that
    notice is kept, and it and the rest are told on the next try. A refusal for good (the bot
    blocked) is not tried again; a topic since deleted is told in the chat itself.
    """
    told = 0
    for cut in await credit.interrupted():
        if not await credit.claim_interrupted(cut):
            continue  # another bot process is telling this one
        texts = catalogs.for_language(cut.language)
        try:
            await _tell_cut(bot, cut.chat.chat_id, cut.chat.thread_id, texts("interrupted"))
        except TELEGRAM_LATER as exc:
            if went_out(exc):
                log.warning("chat.interrupted_unreadable", user_id=cut.user_id)
                told += 1
                continue
            log.warning("chat.interrupted_later", user_id=cut.user_id, error=type(exc).__name__)
            await credit.not_told(cut)
            break
        except TelegramAPIError as exc:
            log.warning("chat.interrupted_refused", user_id=cut.user_id, error=type(exc).__name__)
        else:
            told += 1
    if told:
        log.info("chat.interrupted_told", count=told)
    return told


async def _tell_cut(bot: Bot, chat_id: int, thread_id: int | None, text: str) -> None:
    """Send ``text`` in the answer's topic, or in the chat itself if the topic is gone."""
    try:
        await bot.send_message(chat_id, text, message_thread_id=thread_id)
    except TelegramBadRequest as exc:
        if thread_id is None or _THREAD_NOT_FOUND not in exc.message:
            raise
        log.info("chat.interrupted_topic_gone", user_id=chat_id)
        await bot.send_message(chat_id, text)


_THREAD_NOT_FOUND = "message thread not found"  # the Bot API's words for a topic that is gone
