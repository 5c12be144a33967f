"""The command menu a group's members see: every group command a member uses, each working.

The group menu (``setMyCommands`` with the ``all_group_chats`` scope) held ``/ask`` and
``/groupsettings`` alone: ``/stop``, which stops one's own answer there, and ``/help``, which
tells how to ask there, worked but no member could find them. Now the menu holds ``/ask``,
``/stop``, ``/help`` and ``/groupsettings`` in every language, each with its own description,
and each, sent from the menu (as ``/command@bot``), answers the member alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.group_stop_helpers import told
from tests.test_bot_groups import ANN, FAST, GROUP

if TYPE_CHECKING:
    from pathlib import Path

MENU = ["ask", "stop", "help", "groupsettings"]
LANGUAGES = (None, "ru", "kk")  # None: the fallback's (English), for any other language


async def test_the_group_menu_holds_each_members_command_and_each_answers(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **FAST) as stack:
        catalogs = stack.veil.catalogs
        group_menus = {
            call.params.get("language_code"): call.params["commands"]
            for call in stack.telegram.calls_of("setMyCommands")
            if (call.params.get("scope") or {}).get("type") == "all_group_chats"
        }
        assert set(group_menus) == set(LANGUAGES)
        for language, commands in group_menus.items():
            texts = catalogs.for_language(language or "en")
            assert [c["command"] for c in commands] == MENU, language
            descriptions = [c["description"] for c in commands]
            assert descriptions == [texts(f"cmd_{c}") for c in MENU], language
            assert len(set(descriptions)) == len(MENU), language
        texts = catalogs.for_language("en")
        expected = [
            texts("ask_usage"),
            texts("group_nothing_to_stop"),
            texts("group_help"),
            texts("group_admins_only"),
        ]
        for count, command in enumerate(MENU, start=1):
            stack.telegram.send_text(ANN, f"/{command}@veil_test_bot", chat_id=GROUP)
            await told(stack, GROUP, ANN, count)  # one after the other, each its own notice
        assert await told(stack, GROUP, ANN, len(MENU)) == expected
