"""What the bot gives handlers to show answers with, and where each update's answer is shown.

The bot (the composition root) provides the implementations as workflow data: ``drafts``
(private chats stream into a draft) and ``editors`` (inline, guest and group answers stream by
editing one message at a group-safe pace; ``editors.showing`` remembers, per update, the
message an answer is shown in, so that the errors router can put a failure there, or in a
group tell only the asker, without the handler catching anything; ``editors.answered`` the
places answered already, so an update delivered again is not answered twice).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

from services.questions import AnswerSink, CountingSink

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from aiogram import Bot
    from aiogram.types import InlineKeyboardMarkup

    from services.answers import Answered, LongAnswers, ReplyChains, Showing
    from services.groups import Posting


class NoticeSink(AnswerSink, Protocol):
    """A sink that can also show a short notice where the answer would have been."""

    async def say(self, text: str) -> None:
        """Show ``text`` (a plain notice) in the answer's place."""


class EditedAnswer(NoticeSink, Protocol):
    """An answer streamed into one message by edits (inline, guest, group)."""

    written: bool  # the whole answer was given (``complete`` with text): its final edit is out

    async def finished(self) -> bool:
        """Wait for the final edit if it is still under way (a flood wait outlasts the answer).

        True once answer text is in the message (``note`` goes under it).
        """
        ...

    async def note(self, text: str) -> None:
        """Add a short line under the final answer (one more edit)."""


class DraftTarget(NoticeSink, CountingSink, Protocol):
    """A sink that streams into a private chat's draft; its stop button names ``draft_id``."""

    draft_id: int
    completed: bool  # the answer, or the part of it that arrived before a failure, went out
    # Not sent now, but its row went with the charge: the outbox sends it (``kept``).
    left_to_outbox: bool

    async def note(self, text: str, markup: InlineKeyboardMarkup) -> None:
        """Send ``text`` (a plain notice after the answer) with buttons under it."""

    async def note_taken(self) -> None:
        """Telegram took one more note under the final answer: counted, and recorded."""


class Drafts(Protocol):
    """Makes the sink for one answer in a private chat (the bot provides it as ``drafts``)."""

    def __call__(
        self, chat_id: int, *, thread_id: int | None = None, reply_to: int | None = None
    ) -> DraftTarget:
        """A fresh sink streaming into ``chat_id`` (into its topic ``thread_id``, if given).

        ``reply_to``: the message its first final message replies to (an answer sent again).
        """
        ...


class GroupStops(Protocol):
    """What a stop button's press asks of the group answers (``handlers.groups.kit``)."""

    def stop_pressed(
        self, chat_id: int, stop_tag: str, user_id: int
    ) -> Literal["stopped", "opening", "held"] | None:
        """A press of ``stop_tag`` in group ``chat_id``, as far as the group's answer behind it.

        None: no group answer is behind it. ``stopped``: its asker's, whose placeholder was
        going up, withdrawn; ``opening``: another's, going up; ``held``: one streaming or
        telling its end in its message (the chat service stops it, if anything does).
        """
        ...


class Editors(Protocol):
    """Streams answers by editing one message, paced per chat (the bot's ``editors``)."""

    bot: Bot
    answers: LongAnswers
    showing: Showing
    chains: ReplyChains
    answered: Answered

    def turn(self, chat_id: int) -> AbstractAsyncContextManager[None]:
        """Hold the group's turn: one answer at a time streams there, in arrival order."""
        ...

    async def post(
        self,
        chat_id: int,
        text: str,
        *,
        reply_to: int,
        markup: InlineKeyboardMarkup | None,
        posting: Posting | None = None,
    ) -> int | None:
        """Send a placeholder reply in a group, paced; its message id, None: ``withdrawn``.

        Telegram's "ok" with a result that names no message raises aiogram's
        ``ClientDecodeError`` whose ``taken`` is true (``handlers.replies.went_out``): the
        placeholder is in the group, and its id unknown.
        """
        ...

    async def inline(  # noqa: PLR0913 -- the message, what goes around it, and where it is
        self,
        inline_message_id: str,
        *,
        header: str,
        stop_markup: InlineKeyboardMarkup | None,
        more_label: str,
        gone: Callable[[], object] | None = None,
        posted_in: int | None = None,
    ) -> EditedAnswer:
        """A sink editing an inline (or guest) message, the question as its ``header``.

        ``gone`` is called once if the message turns out to be gone (deleted): it stops the
        answer, which nobody could see any more. ``posted_in``: the chat the message was just
        posted in, where known (a guest answer's): its edits take that chat's pace.
        """
        ...

    async def in_chat(
        self,
        chat_id: int,
        message_id: int,
        *,
        stop_markup: InlineKeyboardMarkup | None,
        more_label: str,
        gone: Callable[[], object] | None = None,
    ) -> EditedAnswer:
        """A sink editing the bot's message ``message_id`` in a group.

        ``gone`` is called once if the message turns out to be gone (deleted, or the bot
        removed from the group): it stops the answer.
        """
        ...

    async def deep_link(self, start: str) -> str:
        """The link that opens the private chat with ``/start <start>``."""
        ...

    async def replace_inline(
        self,
        inline_message_id: str,
        text: str,
        markup: InlineKeyboardMarkup | None,
        *,
        posted_in: int | None = None,
    ) -> None:
        """Put a short notice in an inline message, paced (Telegram failing: logged).

        ``posted_in``: the chat the message was posted in, where known (a guest answer's): the
        notice takes that chat's pace, as the answer's edits do.
        """
        ...

    async def retract(self, chat_id: int, message_id: int) -> None:
        """Delete the bot's placeholder ``message_id`` (gone already: fine)."""
        ...

    async def redraw(
        self, chat_id: int, message_id: int, markup: InlineKeyboardMarkup | None
    ) -> None:
        """Put ``markup`` under the bot's message in a group, at its pace (a refusal: logged)."""
        ...

    async def settle_left(self, chat_id: int, message_id: int, text: str) -> None:
        """Put ``text`` in the bot's message in a group, its buttons gone, at its pace."""
        ...

    async def tell_chat(
        self,
        chat_id: int,
        sender_id: int,
        text: str,
        *,
        reply_to: int,
        markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """Tell a chat that posted in a group: a reply at the group's pace, once while queued.

        ``markup``: its buttons (``/groupsettings``' panel, a public reply to an admin too).
        """
        ...

    async def tell_one(  # noqa: PLR0913 -- where, to whom, what, and its buttons
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        reply_to: int,
        markup: InlineKeyboardMarkup | None,
        thread_id: int | None = None,
    ) -> None:
        """Tell one member of a group: an ephemeral message, else a reply deleted soon.

        ``thread_id``: the forum topic the member wrote in (the notice goes there, not to the
        General topic).
        """
        ...
