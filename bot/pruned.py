"""An update read in part: the rich content this aiogram cannot read, left out.

A rich message (Bot API 10.1) is a tree of blocks and pieces of text, each of a ``type`` from
lists Telegram grows; aiogram reads the kinds it knows and nothing else, so one block of a
newer kind (in a message, or in the rich message it replies to) failed the whole update, which
was then skipped: the user's question was never answered, nor told why. ``without_unread``
takes out the smallest part of a rich message that holds each failure (a piece of text, else
its block), so the rest of the update can be read and handled. So does a field of a newer
kind in a message replied to (a kind of forward origin this aiogram does not know, say): that
field is left out of it, the question replying to it is still answered; unless the message
replied to cannot be read without it (an external reply's origin) or it is what that message is
(its photo, its paid media): then it is skipped as before.

An update skipped so (or on a field of a newer kind in the message itself, or on too many
failures) was not told to anyone: a question to Veil went unanswered, its asker never told
why. ``unread_envelope`` gives what stands for its message instead: where it came from, and
what in it names Veil (in a group), marked ``common.content.UNREAD``; ``handlers.replies.unread``
tells the asker Veil could not read it, where it was addressed to Veil. An edit Veil could not
read stands so too: one addressed to Veil is told what any edit is (it was answered as sent).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from common.content import FILE, UNREAD, UNSEEN

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["MOST_FAILURES", "unread_envelope", "without_unread"]

_RICH = "rich_message"  # any message's rich content: its own, a replied one's, a pinned one's
# A message replied to, in this chat or another: read without what fails in it, the reply
# itself is still read (its question answered, without the part it could not read).
_REPLIED = frozenset({"reply_to_message", "external_reply"})
# What a message replied to is, never left out of it: without it, a reply to a photo (to paid
# media of a newer kind, say) would read as a reply to nothing, and "what is this?" be answered
# blind, and charged, where the bot refuses it (``handlers.replies.replies_to_unseen``, whose
# kinds these are, a document's too).
_CONTENT = frozenset((*UNSEEN, FILE))

Spot = tuple[str | int, ...]  # keys and indexes from the update down to the part left out
# Failures past which an update is not read in part: each costs a walk down the update, and
# pydantic blames every member of a union for one piece of text of a newer kind (~100 each),
# so a message of thousands of such pieces (within Telegram's 32,768 characters) held the
# event loop, every chat's, for tens of seconds. Hundreds of newer blocks, or ~200 pieces of
# text, are still read in part.
MOST_FAILURES = 20_000


def without_unread(raw: dict[str, Any], error: ValidationError) -> tuple[dict[str, Any], int]:
    """``raw`` without the parts ``error`` failed on, and how many parts were left out.

    Each failure takes out the innermost list item under a ``rich_message`` that holds it: a
    piece of text of a kind unknown here, or the block holding what is; else, in a message
    replied to, the field of it that holds the failure (never the message, nor what it is:
    ``_spot``). A
    block whose piece of text is taken out stays: pydantic also blames the block for it (its
    text is no ``str`` either), and a block that fails for a reason of its own fails again, to
    be taken out when read again. ``raw`` is unchanged; (``raw``, 0) when some failure lies
    elsewhere (in the message itself), where nothing is left out, and when there are more than
    ``MOST_FAILURES``.
    """
    if error.error_count() > MOST_FAILURES:
        return raw, 0
    spots: set[Spot] = set()
    for failure in error.errors(include_url=False, include_input=False, include_context=False):
        spot = _spot(raw, failure["loc"])
        if spot is None:
            return raw, 0
        spots.add(spot)
    # The innermost alone: a spot holding another goes (a block whose piece of text is cut).
    holding = {spot[:end] for spot in spots for end in range(1, len(spot))}
    spots -= holding
    pruned = copy.deepcopy(raw)
    # The deepest and last first: an item taken out moves none of those still to take out.
    for spot in sorted(spots, key=_order, reverse=True):
        node: Any = pruned
        for step in spot[:-1]:
            node = node[step]
        del node[spot[-1]]
    return pruned, len(spots)


def _spot(raw: dict[str, Any], loc: tuple[str | int, ...]) -> Spot | None:
    """Where in ``raw`` the part to leave out for a failure at ``loc`` is (``without_unread``).

    pydantic's path names the member of a union it tried (``paragraph``, ``RichTextBold``,
    ``str``) beside the keys and indexes of the input: those are no step in ``raw``. None when
    the failure is neither in rich content nor in a field of a message replied to.
    """
    node: Any = raw
    path: list[str | int] = []
    rich = False
    item = replied = 0
    for step in loc:
        if not _steps_in(node, step):
            continue  # a union member's name
        node = node[step]
        path.append(step)
        rich = rich or step == _RICH
        if rich and isinstance(step, int):
            item = len(path)
        if step in _REPLIED and not rich:
            replied = len(path)
    if item:
        return tuple(path[:item])
    if replied and len(path) > replied and path[replied] not in _CONTENT:
        return tuple(path[: replied + 1])  # the replied message's field that failed
    # What the message replied to is failed (``_CONTENT``), or it lacks a field it must have
    # (an external reply's origin, of a kind left out): without it, what it was (a photo in
    # another chat) would go too, and "what is this?" be answered blind, and charged.
    return None


def _steps_in(node: object, step: str | int) -> bool:
    """Whether ``step`` is a key of ``node`` (an object) or an index of it (an array)."""
    if isinstance(node, dict):
        return isinstance(step, str) and step in node
    return isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)


def _order(spot: Spot) -> tuple[tuple[int, str | int], ...]:
    """A key sorting spots in one order whatever mix of keys and indexes they hold."""
    return tuple((0, step) if isinstance(step, int) else (1, step) for step in spot)


# Where a message came from and where an answer to it goes: a private chat's, a group's (its
# topic), a guest summons' query. Telegram's own types, which this aiogram reads.
_ENVELOPE = (
    *("message_id", "date", "chat", "from", "sender_chat", "edit_date"),
    *("message_thread_id", "is_topic_message", "guest_query_id"),
)
# The updates whose message may stand so: the edit one is told of too (``handlers.chat``'s and
# ``handlers.groups``' ``on_edited``: answered as sent).
_STANDING = ("message", "edited_message", "guest_message")
# What tells whether a group's message is addressed to Veil (``handlers.groups.addressed``):
# its words and their mentions, the bot it came through, whose message it replies to.
_ADDRESS = ("text", "entities", "caption", "caption_entities", "via_bot")
_REPLIED_ENVELOPE = ("message_id", "date", "chat", "from")
_GROUPS = frozenset({"group", "supergroup"})


def unread_envelope(raw: dict[str, Any]) -> dict[str, Any] | None:
    """What may stand for an update that could not be read; None where nothing may.

    Its message (``message``, ``edited_message`` or ``guest_message``) reduced to
    ``_ENVELOPE``, marked ``UNREAD``; a group's with what tells whether it was addressed to
    Veil. An edit asks nothing new, read or not: it stands to be told so, as any edit is (it
    was unseen: an edit addressed to Veil got no word). A forward in a group is never addressed
    to Veil (its mention was written elsewhere): none. A guest summons is, forwarded too
    (Telegram asks Veil for its one answer, which a readable forward gets as a notice): it
    stands.
    """
    kind = next((key for key in _STANDING if isinstance(raw.get(key), dict)), None)
    if kind is None:
        return None
    message: dict[str, Any] = raw[kind]
    chat = message.get("chat")
    group = isinstance(chat, dict) and chat.get("type") in _GROUPS
    if group and kind != "guest_message" and "forward_origin" in message:
        return None
    envelope = {key: message[key] for key in _ENVELOPE if key in message} | {UNREAD: True}
    if group:
        envelope |= {key: message[key] for key in _ADDRESS if key in message}
        replied = message.get("reply_to_message")
        if isinstance(replied, dict):
            envelope["reply_to_message"] = {
                key: replied[key] for key in _REPLIED_ENVELOPE if key in replied
            }
    return {"update_id": raw["update_id"], kind: envelope}
