"""Groups Veil is a member of: it answers when mentioned, when replied to, or to ``/ask``.

Anything else in a group is not for Veil, and it stays silent (with privacy mode on, Telegram
only sends it those messages anyway). An answer is a reply to the question that streams by
editing at the group's pace (into a rich message where Telegram takes one, ``bot.editing``);
answers in one group go one at a time, in the order asked, so a burst of mentions stays within
Telegram's 20 messages a minute per group. It is charged to the
asker, a one-off (nothing from or to their private history); a reply to one of Veil's answers
carries that thread as context when the group allows it. The answer runs detached from its
update (``ChatService.detach``), waiting for the group's turn in a task of its own, so a queue
of mentions does not keep their updates; a member has one question at a time there (another
one meanwhile is told to wait, until the answer is written whole), so one member's burst is not
answered ahead of everyone else. A question whose asker left the group, or was banned, while it
waited behind another answer is let go in its turn, unanswered and uncharged (``Presence.gone``:
one look-up of Telegram's, never waited out; a second, as it waits, only in a channel's
discussion group that takes anyone's comments, serving the turn too when Telegram answers it
once the turn came). Notices for one person (no credit, busy, the usage line, "admins only",
the apology for a bug) go to that person only, at the group's pace and in their forum topic, as
the errors router tells them (``handlers.failures``); a failure after part of the answer was
shown is noted under that part instead, which stays (it is paid for); one for an asker gone
from the group is dropped, a part shown still noted for anyone (``GroupAnswer.failed``). A reply
deleted mid-answer (or the bot removed, or refused the right to write there) stops the answer;
a mention delivered again is not answered twice (``editors.answered``); one edited is answered
as sent, and its asker told so alone (``on_edited``). A question sent as a chat (an anonymous
admin, a channel) names no person to charge: it gets a reply asking to write as oneself.
Admins set the group's settings with ``/groupsettings`` (checked with getChatMember; one
posting as the group itself is an admin). ``/terms`` and ``/paysupport`` in a group are told
to the member alone, as notices are, and so is ``/help`` (or ``/start@veil``): how to
ask here. ``/stop`` or ``/cancel`` stops the sender's own answer in that group and topic, as
its button does (``cmd_stop``), an inline answer of theirs posted there too (``posted``). A
group upgraded to a supergroup (a new chat id) takes its settings along (``on_upgraded``).

The feature's modules: ``addressed`` (what is for Veil, the router's way in), ``asking`` (a
question queued for the group's turn), ``answer`` (one answer in its turn), ``presence``
(whether its asker is still in the group), ``kit`` (what answers share, Telegram's look-ups),
``telling`` (notices at the group's pace), ``commands`` (members' commands), ``posted`` (the
inline answers members post, for their ``/stop``) and ``settings`` (the admins' panel). They
import one another, never another feature's router.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, or_f

from handlers.callbacks import GroupSet, GroupToggle
from handlers.groups.addressed import addressed, cmd_ask, on_addressed, on_edited, on_unread
from handlers.groups.commands import cmd_help, cmd_paysupport, cmd_stop, cmd_terms
from handlers.groups.kit import GROUPS
from handlers.groups.posted import on_inline_posted, through_veil
from handlers.groups.settings import cmd_groupsettings, on_group_set, on_group_toggle, on_upgraded
from handlers.replies import unread


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type.in_(GROUPS))
    router.message.register(on_unread, unread)  # first: nothing else may take what stands for it
    # A forwarded command is someone else's words, an inline bot's result that bot's: not run.
    own = ~F.forward_origin & ~F.via_bot
    router.message.register(cmd_ask, Command("ask", ignore_case=True), own)
    router.message.register(cmd_stop, Command("stop", "cancel", ignore_case=True), own)
    router.message.register(cmd_help, Command("help", "start", ignore_case=True), own)
    router.message.register(cmd_groupsettings, Command("groupsettings", ignore_case=True), own)
    router.message.register(cmd_terms, Command("terms", ignore_case=True), own)
    router.message.register(cmd_paysupport, Command("paysupport", ignore_case=True), own)
    router.message.register(on_upgraded, F.migrate_to_chat_id | F.migrate_from_chat_id)
    router.message.register(on_inline_posted, through_veil)  # answered as the inline one it is
    router.message.register(on_addressed, addressed)
    asked = or_f(Command("ask", ignore_case=True), addressed)
    router.edited_message.register(on_edited, F.chat.type.in_(GROUPS), own, asked)
    router.callback_query.register(on_group_set, GroupSet.filter())
    router.callback_query.register(on_group_toggle, GroupToggle.filter())
    return router
