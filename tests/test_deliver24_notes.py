"""The notes under a private answer sent again: counted as its messages are, and all of them.

A resend's note (where it broke off, Continue) went out after its last message, but only the
messages were counted in its row: a bot killed after Telegram took the note and before the row
was deleted sent the note again at its next start, twice under an answer shown once. The notes
are counted too (``Progress.notes``). And an answer about a file the model read only the start
of says so under it (the live one always did; one sent again did not).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import QUICK_RETRY, process_stack, running_stack
from tests.fakes.vllm import FakeVLLM, split_tokens
from tests.harness import REPO, ManagedProcess, restarted, rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 9241
ANSWER = " ".join(f"godwit{i}" for i in range(30))
BROKE_AT = 12  # the fake model fails after this many tokens
PART = "".join(split_tokens(ANSWER)[:BROKE_AT])
KILL_SITE = REPO / "tests" / "killsite"
WINDOW, ROOM = 1024, 256
SHORT = " ".join(["tide"] * 100)  # an answer within ROOM


async def test_a_bot_killed_once_the_note_of_an_answer_sent_again_was_taken_shows_it_once(
    tmp_path: Path,
) -> None:
    # The first bot dies as the broken-off part would go out (its row written with the charge);
    # the second sends it again, with its note, and dies as it would mark it delivered; the
    # third finds both taken: nothing more is sent (the note used to go out a second time).
    data = tmp_path / "data"
    db = data / "veil.db"
    async with process_stack(data, answer=ANSWER) as stack:
        stack.vllm.error_mid_stream_after = BROKE_AT
        for kill_at in ("bot.streaming:DraftSink.complete", "models.store:Store.delivered"):
            killed = stack.env | {"PYTHONPATH": str(KILL_SITE), "VEIL_TEST_KILL_AT": kill_at}
            bot = await ManagedProcess.start("-m", "bot", env=killed)
            if kill_at.startswith("bot.streaming"):  # the second resends before it has started
                await bot.wait_for_line("bot.started")
                stack.telegram.send_text(USER, "a question")
            assert await bot.wait() != 0
            assert rows(db, "SELECT ending FROM undelivered") == [("broke_off",)]
        assert rows(db, "SELECT parts_taken, notes_taken FROM undelivered") == [(1, 1)]
        async with restarted(stack.env, db):
            pass
        sent = [str(m.get("text")) for m in stack.telegram.sent_messages(USER)]
    assert len(sent) == 2, sent
    part, note = sent
    assert part == PART
    assert note.startswith("⚠️ The answer broke off here")
    assert rows(db, "SELECT outcome FROM holds") == [("settled",)]


async def test_an_answer_about_a_file_read_in_part_sent_again_says_how_much_was_read(
    tmp_path: Path,
) -> None:
    # The file is over the model's window: it is cut to its start, and the answer's final
    # message does not go out (Telegram down past its tries): the upkeep sends it once Telegram
    # is back, followed by the note the live one has, saying how much of the file was read.
    server = FakeVLLM(answer=SHORT, max_model_len=WINDOW)
    text = " ".join(f"w{n % 10}" for n in range(1500))
    async with running_stack(
        tmp_path,
        model_server=server,
        sweep_every=0.2,
        context_tokens=WINDOW,
        max_answer_tokens=ROOM,
        final_retry_wait=QUICK_RETRY,
    ) as stack:
        telegram = stack.telegram
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
        telegram.send_document(USER, text.encode(), file_name="long.txt", caption="Sum up")
        turns = await stack.stored_turns(USER, 2, within=30)
        assert await stack.veil.chat.wait_idle(90)
        assert rows(tmp_path / "veil.db", "SELECT 1 FROM undelivered") == [(1,)]
        telegram.clear_failures()
        await wait_until(lambda: rows(tmp_path / "veil.db", "SELECT 1 FROM undelivered") == [])
        assert await stack.veil.chat.wait_idle(30)
        sent = [str(m.get("text")) for m in telegram.sent_messages(USER)]
    kept = int(turns[0].split("only its first ", 1)[1].split(" ", 1)[0])
    percent = kept * 100 // len(text)
    assert 0 < percent < 100
    note = (
        f"📄 The file was too long for the model to read whole and still leave room for an"
        f" answer: it read the first {percent}% of it, and the answer is about that part. To ask"
        " about the rest, send it as a smaller file or paste it into a message."
    )
    assert sent[-2:] == [SHORT, note]
    assert sent.count(SHORT) == 1
