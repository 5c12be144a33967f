"""Commands read from a message's text only: a caption is never a command.

aiogram's ``Command`` filter reads a message's text or, without one, its caption, so a file
sent with the caption ``/new`` started a new conversation and the file was dropped without a
word. A command is what the user sends as a message; a caption is what they say about the file
or picture it is under (the chat reads a text file's caption as the question about it, and
tells the user a command there was not run: ``handlers.chat.on_document``). Groups keep
aiogram's filter: there a question in a caption (``/ask`` under a file) is told that only a
message's text is read (``handlers.groups``).

A forwarded message is never a command either: it is someone else's text the user shares (a
"/new" forwarded from a chat about the bot), so the private chat asks it as a question like any
forwarded text, and a group takes it as not addressed to Veil (``handlers.groups.addressed``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.filters import Command, CommandStart
from aiogram.types import Message

if TYPE_CHECKING:
    from aiogram import Bot


class TextCommand(Command):
    """aiogram's ``Command``, for a message with a text (never a caption, never a forward)."""

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, Any]:
        """The command's data when the text is this command; False for a caption or a forward."""
        if not isinstance(message, Message) or message.text is None or forwarded(message):
            return False
        return await super().__call__(message, bot)


class TextCommandStart(CommandStart):
    """aiogram's ``CommandStart``, for a message with a text (never a caption, never a forward)."""

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, Any]:
        """The command's data when the text is /start; False for a caption or a forward."""
        if not isinstance(message, Message) or message.text is None or forwarded(message):
            return False
        return await super().__call__(message, bot)


def in_caption(message: Message) -> bool:
    """Whether the caption begins with a command as Telegram marks one (not run: see above)."""
    return any(e.type == "bot_command" and e.offset == 0 for e in message.caption_entities or ())


def forwarded(message: Message) -> bool:
    """Whether the message is a forward: someone else's words, never the user's command."""
    return message.forward_origin is not None
