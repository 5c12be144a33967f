"""A long private answer whose later part Telegram keeps refusing (a long flood wait).

Telegram took the first messages; each delivery after that sends only those it did not take,
never the answer again from its start (``models.outbox.Progress``).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.harness import rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from playground.botapi import FakeTelegram

USER = 9233
WORDS = 700
LONG = " ".join(f"heron{i:04d}" for i in range(WORDS))  # about 7,000 characters: two messages
# 700 blocks: two rich messages (at most 500 blocks each).
BLOCKS = "\n\n".join(f"heron{i:04d}" for i in range(WORDS))
# The same, each block long enough that the second rich message's 200 are two plain messages.
WIDE = "\n\n".join(f"heron{i:04d}" + "x" * 36 for i in range(WORDS))


def shown(telegram: FakeTelegram, *methods: str) -> Counter[str]:
    """How often each word of the answer reached the user in calls Telegram took."""
    words: Counter[str] = Counter()
    for method in methods:
        for call in telegram.calls_of(method):
            if call.answered != "ok":
                continue
            rich = call.params.get("rich_message", {})
            text = call.params.get("text") or rich.get("markdown", "")
            words.update(re.findall(r"heron\d{4}", str(text)))
    return words


async def delivered_through_a_long_flood(
    tmp_path: Path, method: str, answer: str, *, refuse_rich: bool = False
) -> Counter[str]:
    """Ask; every second ``method`` call waits longer than the session does; until delivered."""
    data = tmp_path / "data"
    db = data / "veil.db"
    async with running_stack(
        data,
        answer=answer,
        sweep_every=0.2,
        rich_messages=method == "sendRichMessage" or refuse_rich,
    ) as stack:
        telegram = stack.telegram
        if refuse_rich:
            telegram.state.rich_messages = False
        telegram.fail_every([method], nth=2, status=429, retry_after=120)
        telegram.send_text(USER, "a long question")
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        # A few passes, or delivered whole meanwhile.
        await wait_until(
            lambda: len(telegram.calls_of(method)) >= 8 or not rows(db, "SELECT 1 FROM undelivered")
        )
        telegram.clear_failures()
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [], within=60)
        assert await stack.veil.chat.wait_idle(30)
        return shown(telegram, method)


async def test_a_long_answer_whose_second_part_waits_is_not_sent_again_from_its_first(
    tmp_path: Path,
) -> None:
    words = await delivered_through_a_long_flood(tmp_path, "sendMessage", LONG)
    assert words["heron0000"] == 1, f"the first part shown {words['heron0000']} times"
    assert set(words) == {f"heron{i:04d}" for i in range(WORDS)}
    assert set(words.values()) == {1}


async def test_a_long_rich_answer_is_not_sent_again_from_its_first_message(
    tmp_path: Path,
) -> None:
    words = await delivered_through_a_long_flood(tmp_path, "sendRichMessage", BLOCKS)
    assert words["heron0000"] == 1, f"the first part shown {words['heron0000']} times"
    assert set(words) == {f"heron{i:04d}" for i in range(WORDS)}
    assert set(words.values()) == {1}


async def test_refused_rich_messages_go_on_as_entities_from_the_part_not_taken(
    tmp_path: Path,
) -> None:
    words = await delivered_through_a_long_flood(tmp_path, "sendMessage", LONG, refuse_rich=True)
    assert words["heron0000"] == 1, f"the first part shown {words['heron0000']} times"
    assert set(words) == {f"heron{i:04d}" for i in range(WORDS)}
    assert set(words.values()) == {1}


async def test_an_answer_whose_rich_message_was_refused_goes_on_in_entities_where_it_stopped(
    tmp_path: Path,
) -> None:
    # Every second rich message is refused (its rest goes out as entities); every second plain
    # message meets a long flood wait. A pass goes on in the entity rendering of that rest,
    # never with the refused rich message again (it may be taken then: shown twice).
    data = tmp_path / "data"
    db = data / "veil.db"
    async with running_stack(data, answer=WIDE, sweep_every=0.2, rich_messages=True) as stack:
        telegram = stack.telegram
        telegram.fail_every(["sendRichMessage"], nth=2, status=400)
        telegram.fail_every(["sendMessage"], nth=2, status=429, retry_after=120)
        telegram.send_text(USER, "a long question")
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        await wait_until(
            lambda: (
                len(telegram.calls_of("sendMessage")) >= 8
                or not rows(db, "SELECT 1 FROM undelivered")
            )
        )
        telegram.clear_failures()
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [], within=60)
        assert await stack.veil.chat.wait_idle(30)
        words = shown(telegram, "sendRichMessage", "sendMessage")
        refused = [c for c in telegram.calls_of("sendRichMessage") if c.answered != "ok"]
    assert refused  # the rest did go out as entities
    assert set(words) == {f"heron{i:04d}" for i in range(WORDS)}
    assert set(words.values()) == {1}, [w for w, n in words.items() if n > 1][:3]
