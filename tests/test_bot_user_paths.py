"""What an everyday user does in the private chat, end to end: fake Telegram ← real bot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

USER = 6101


async def test_a_command_in_another_case_is_that_command(tmp_path: Path) -> None:
    # A phone capitalises the first letter of a message: "/Start", "/Help". Each was answered
    # "I don't know /Start", though the user typed the bot's own command.
    commands = ["/Start", "/HELP", "/New", "/History", "/Model", "/Settings", "/Forget"]
    async with running_stack(tmp_path) as stack:
        for count, command in enumerate(commands, start=1):
            stack.telegram.send_text(USER, command)
            await stack.final_messages(USER, count)
        replies = [str(m.get("text", "")) for m in stack.telegram.sent_messages(USER)]
    assert replies[0].startswith("Hi, Ann! I'm Veil")
    assert replies[1].startswith("Write any question")
    assert replies[2].startswith("Started a new conversation.")
    assert replies[3].startswith("Your recent conversations")
    assert replies[4].startswith("Current model: veil-test")
    assert replies[5].startswith("Your settings:")
    assert replies[6].startswith("Erase your whole history and settings?")
