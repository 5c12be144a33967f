"""A group's settings: the admins' ``/groupsettings`` panel, and its move on an upgrade.

Admins set whether Veil answers in the group and whether a reply carries its thread, with
toggles checked against Telegram (getChatMember; one posting as the group itself is an
admin). A group upgraded to a supergroup (a new chat id) takes its settings along.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import GroupSet, GroupToggle
from handlers.groups.kit import GROUPS
from handlers.groups.telling import tell_alone, tell_chat

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import CallbackQuery, Message

    from common.texts import Texts
    from handlers.groups.kit import GroupKit
    from services.groups import GroupSetting, GroupSettings

log = structlog.get_logger("veil.groups")

ADMINS = frozenset({"creator", "administrator"})


def settings_keyboard(texts: Texts, settings: GroupSettings) -> InlineKeyboardMarkup:
    """Two toggles, each showing its state."""
    rows = [
        [
            InlineKeyboardButton(
                text=texts(f"group_{setting}_{'on' if getattr(settings, setting) else 'off'}"),
                callback_data=GroupSet(
                    setting=setting, on="no" if getattr(settings, setting) else "yes"
                ).pack(),
            )
        ]
        for setting in ("answers", "reply_context")
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def is_admin(bot: Bot, chat_id: int, user_id: int) -> bool:
    """Whether ``user_id`` administers ``chat_id``, as Telegram says now."""
    member = await bot.get_chat_member(chat_id, user_id)
    return member.status in ADMINS


async def sent_by_admin(message: Message, bot: Bot) -> bool:
    """Whether an admin of the group sent ``message``.

    One sent as the group itself is an anonymous admin's (only admins can post so); one sent as
    a channel is anybody's; a person's, as Telegram says now (never asked about a pseudo-user).
    """
    if message.sender_chat is not None:
        return message.sender_chat.id == message.chat.id
    user = message.from_user
    return user is not None and await is_admin(bot, message.chat.id, user.id)


async def cmd_groupsettings(message: Message, bot: Bot, texts: Texts, kit: GroupKit) -> None:
    """Admins: the group's settings as toggles; anyone else: a short refusal.

    The panel is a public reply (every admin may use it) at the group's pace, as a notice to
    a chat is (``tell_chat``): sent at once, an admin tapping the command again and again
    spent the group's messages a minute, and met Telegram's 429s, ahead of members' answers.
    """
    if not await sent_by_admin(message, bot):
        await tell_alone(message, texts("group_admins_only"), kit.editors)
        return
    settings = await kit.groups.settings(message.chat.id)
    panel = settings_keyboard(texts, settings)
    await tell_chat(message, texts("group_settings"), kit.editors, panel)


async def on_group_set(
    query: CallbackQuery, callback_data: GroupSet, bot: Bot, texts: Texts, kit: GroupKit
) -> None:
    """An admin pressed a setting's button: set it as the button offered, show the new state."""
    await _change_setting(query, bot, texts, kit, callback_data.setting, callback_data.on == "yes")


async def on_group_toggle(
    query: CallbackQuery, callback_data: GroupToggle, bot: Bot, texts: Texts, kit: GroupKit
) -> None:
    """An admin pressed a panel's button from before ``GroupSet``: flip it, show the new state."""
    await _change_setting(query, bot, texts, kit, callback_data.setting, None)


async def _change_setting(  # noqa: PLR0913, PLR0917 -- the press, and what changes
    query: CallbackQuery,
    bot: Bot,
    texts: Texts,
    kit: GroupKit,
    setting: GroupSetting,
    on: bool | None,  # noqa: FBT001 -- None: flip
) -> None:
    """Change ``setting`` (to ``on``, or the other way) if an admin of a group pressed it.

    A press forged under another message (a private chat's, an inline one) changes nothing.
    Two presses at once both redraw the panel: the second redraw, unchanged, is no failure.
    The redraw goes at the group's pace (``Editors.redraw``), in the order the changes were
    made: the panel ends showing the last.
    """
    message = query.message
    if message is None or message.chat.type not in GROUPS:
        await query.answer()
        return
    if not await is_admin(bot, message.chat.id, query.from_user.id):
        await query.answer(texts("group_admins_only"), show_alert=True)
        return
    await query.answer()  # before the database: it may be slow to take the change
    if on is None:
        settings = await kit.groups.flip(message.chat.id, setting)
    else:
        settings = await kit.groups.set(message.chat.id, setting, on=on)
    panel = settings_keyboard(texts, settings)
    await kit.editors.redraw(message.chat.id, message.message_id, panel)


async def on_upgraded(message: Message, kit: GroupKit) -> None:
    """The group was upgraded to a supergroup, a chat with a new id: its settings go along.

    Telegram tells it twice: ``migrate_to_chat_id`` in the group, ``migrate_from_chat_id`` in
    the supergroup; whichever comes first moves them, the other finds nothing left to move.
    """
    if message.migrate_to_chat_id is not None:
        group, supergroup = message.chat.id, message.migrate_to_chat_id
    elif message.migrate_from_chat_id is not None:
        group, supergroup = message.migrate_from_chat_id, message.chat.id
    else:  # pragma: no cover -- the filter lets only these through
        return
    log.info("groups.upgraded")
    await kit.groups.moved(group, supergroup)
