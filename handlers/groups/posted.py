"""Veil's inline answers members post in a group, kept so that ``/stop`` there finds them.

A member who asks inline in a group (``@veil question``, the result picked) posts Veil's
answer there through Veil (``via_bot``); it streams by edits of the inline message, which
names no chat (``handlers.inline``), so ``/stop@veil`` in that group found nothing of theirs
and told them so, under the answer being written. Telegram sends the bot the group's copy of
that message (privacy mode lets messages sent via the bot through), its stop button carrying
the answer's tag: kept here by group, forum topic and member, so that their ``/stop`` in that
group and topic stops it as the button does (``cmd_stop``), and never theirs elsewhere.
Memory only, tags alone: no text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram.types import InlineKeyboardMarkup

from handlers.callbacks import StopAnswer
from handlers.replies import forum_topic

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import Message

    from handlers.groups.kit import GroupKit

PLACES_REMEMBERED = 10_000  # (group, topic, member) whose posted answers' tags are kept
# Tags kept a place, newest first: a member answered one answer at a time, the newest post is
# nearly always the one streaming; one refused since (asked while it streamed) is kept beside.
TAGS_KEPT = 4

Place = tuple[int, int | None, int]  # (group, forum topic, member)


class InlinePosts:
    """The stop tags of Veil's inline answers each member posted in each group and topic."""

    def __init__(self) -> None:
        self._tags: dict[Place, tuple[str, ...]] = {}

    def posted(self, place: Place, tag: str) -> None:
        """The member posted the inline answer ``tag`` there; the newest places are kept."""
        kept = self._tags.pop(place, ())
        self._tags[place] = (tag, *(t for t in kept if t != tag))[:TAGS_KEPT]
        if len(self._tags) > PLACES_REMEMBERED:
            del self._tags[next(iter(self._tags))]

    def tags(self, place: Place) -> tuple[str, ...]:
        """The tags of the answers the member posted there, newest first."""
        return self._tags.get(place, ())


def place_of(message: Message, user_id: int) -> Place:
    """Where ``message`` of ``user_id``'s is: its group, forum topic, and the member."""
    return (message.chat.id, forum_topic(message), user_id)


def through_veil(message: Message, bot: Bot) -> bool:
    """A filter: ``message`` was posted through Veil's inline mode (``via_bot``)."""
    return message.via_bot is not None and message.via_bot.id == bot.id


def stop_tag(message: Message) -> str | None:
    """The tag of the stop button under ``message``, if it has one of Veil's."""
    markup = message.reply_markup
    if not isinstance(markup, InlineKeyboardMarkup):
        return None
    pressed = [button.callback_data for row in markup.inline_keyboard for button in row]
    for data in pressed:
        if data is not None and data.split(StopAnswer.__separator__)[0] == StopAnswer.__prefix__:
            return _tag(data)
    return None


def _tag(data: str) -> str | None:
    """The tag in a stop button's callback data; None where it does not parse as one."""
    try:
        return StopAnswer.unpack(data).tag
    except (TypeError, ValueError):  # a stop button Veil did not make: nothing of its to stop
        return None


async def on_inline_posted(message: Message, kit: GroupKit) -> None:
    """A member posted Veil's inline answer in the group: kept for their ``/stop`` there.

    Not asked or answered again: it is answered already, as the inline result it is. One
    without a stop button (an answer done, or not Veil's placeholder) has nothing to stop.
    """
    user = message.from_user
    tag = stop_tag(message)
    if user is None or message.sender_chat is not None or tag is None:
        return
    kit.inline_posts.posted(place_of(message, user.id), tag)
