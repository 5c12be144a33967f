"""SIGKILL between a title's charge and the title: a title charged is a title kept.

The bot asks the model for a conversation's title after its first exchange, a request held and
charged like any. Killed once that charge was written and before the title was (the child's
``tests/killsite`` kills it on entering ``Store.set_title``), the restart found the user charged
for a title the conversation never got, and never asked again (the conversation had turns).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import process_stack
from tests.harness import REPO, ManagedProcess, audited, rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 9611
KILL_SITE = REPO / "tests" / "killsite"


async def test_a_title_charged_when_the_bot_is_killed_is_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = data / "veil.db"
    async with process_stack(data, answer="Trip to the mountains in May") as stack:
        env = stack.env | {"VEIL_CONVERSATION_TITLES": "on"}
        killed_at = env | {
            "PYTHONPATH": str(KILL_SITE),
            "VEIL_TEST_KILL_AT": "models.store:Store.set_title",
        }
        bot = await ManagedProcess.start("-m", "bot", env=killed_at)
        await bot.wait_for_line("bot.started")
        stack.telegram.send_text(USER, "plan a trip")
        # The answer's charge and the title's: by then the title is stored, or the bot died.
        await wait_until(lambda: len(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")) == 2)
        await wait_until(
            lambda: (
                bot.process.returncode is not None
                or rows(db, "SELECT title IS NOT NULL FROM conversations") == [(1,)]
            )
        )
        await bot.kill()
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
        finally:
            assert await bot.stop() == 0
    assert rows(db, "SELECT outcome FROM holds") == [("settled",), ("settled",)]
    assert rows(db, "SELECT title IS NOT NULL FROM conversations") == [(1,)]
    audited(env)
