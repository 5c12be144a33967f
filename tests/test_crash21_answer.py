"""SIGKILL between the writes of one answer: its charge and its exchange are kept together.

The final message goes out while the charge is written (tests/test_bot_stop.py), so a bot
killed once Telegram has the answer may have charged it or not; either way the conversation
must agree with the books: a charged answer is in its conversation (the next question is asked
with it), an uncharged one (recovered at the restart) is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import ConversationNotFound, MasterKey, Store
from services.credit import Credit
from services.prices import Prices
from tests.books import inconsistent_users
from tests.botstack import TOKEN, process_stack
from tests.fakes.gated import GatedTelegram
from tests.harness import ManagedProcess, asked_while_held, audited, rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 9601
ANSWER = " ".join(f"wren{i}" for i in range(30))


async def test_an_answer_charged_when_the_bot_is_killed_stays_in_its_conversation(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db = data / "veil.db"
    telegram = GatedTelegram(token=TOKEN)
    async with process_stack(data, answer=ANSWER, telegram_server=telegram) as stack:
        vllm, env = stack.vllm, stack.env
        # The final message waits at Telegram, unanswered.
        bot = await asked_while_held(env, telegram, USER, "first question")
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        await bot.kill()  # charged; the bot still waits for Telegram's reply
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            telegram.release_messages()  # Telegram took the answer after all
            telegram.send_text(USER, "second question")
            await bot.wait_for_line("chat.answered")  # charged and stored by then
        finally:
            assert await bot.stop() == 0
    second = vllm.requests[-1]["messages"]
    assert [(m["role"], m["content"]) for m in second] == [
        ("user", "first question"),
        ("assistant", ANSWER),
        ("user", "second question"),
    ]
    # The held one, which Telegram took late; the restart's, which could not know that
    # (tests/test_deliver22_restart.py: a duplicate, never a loss); the second answer.
    assert [m.get("text") for m in telegram.sent_messages(USER)] == [ANSWER, ANSWER, ANSWER]
    outcomes = rows(db, "SELECT outcome FROM holds")
    assert outcomes == [("settled",), ("settled",)]
    assert len(rows(db, "SELECT 1 FROM turns")) == 4  # nothing recovered: nobody told "cut off"
    assert "charges: 2 (2 settled)" in audited(env)


async def test_turns_that_cannot_be_stored_never_undo_the_charge_they_are_written_with(
    tmp_path: Path,
) -> None:
    # The conversation erased while its answer ended: the charge stands, the turns say why
    # they were not stored, and nothing of them is left in the file.
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        credit = Credit(store, Prices.parse("*=20/60"), 1000)
        await store.ensure_user(USER, "en")
        kept = await store.active_conversation(USER)
        hold = await credit.hold(USER, "gone-1", "veil-test", 10, 50)
        gone = store.turns_writer(USER, kept + 1, [("user", "q"), ("assistant", "a")])
        charge = await credit.settle(hold, 10, 5, receipt_valid=True, also=gone)
        assert (charge.outcome, charge.completion_tokens) == ("settled", 5)
        assert isinstance(gone.error, ConversationNotFound)
        assert gone.stored is None
        hold = await credit.hold(USER, "kept-1", "veil-test", 10, 50)
        written = store.turns_writer(USER, kept, [("user", "q"), ("assistant", "a")])
        await credit.estimate(hold, 7, also=written)
        assert [turn.text for turn in written.stored or []] == ["q", "a"]
        assert [turn.text for turn in await store.history(USER, kept)] == ["q", "a"]
        assert await inconsistent_users(store) == []
    finally:
        await store.close()
