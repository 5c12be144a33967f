"""A poll refused with a flood wait below zero still waits a second before the next.

Since flood26 a poll (``getUpdates``) waits out every flood wait however long, its waits never
adding up to a limit. A wait below zero (never Telegram's, whose smallest is 1; a hostile or
broken proxy's; aiogram takes a 0 for no flood wait at all) was counted as one second but slept
as none: each refusal was followed by the next poll at once, a warning logged each time, without
end while the proxy answered so. Before, the sixtieth such refusal ended the poll (the limit);
now nothing did. Each wait is now slept as it is counted: at least a second.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from bot.telegram import MOST_RETRY_AFTER
from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_flood26_telegram import ANSWER, QUESTION, USER, texts

if TYPE_CHECKING:
    from pathlib import Path

REFUSALS = 3


@pytest.mark.parametrize("retry_after", [-1, -5])
async def test_a_poll_refused_with_no_wait_waits_a_second_before_the_next(
    tmp_path: Path, retry_after: int
) -> None:
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        await stack.telegram.wait_for("getUpdates", lambda c: c.answered == "ok", timeout=10)
        stack.telegram.fail_next(
            "getUpdates",
            status=429,
            description=f"Too Many Requests: retry after {retry_after}",
            retry_after=retry_after,
            count=REFUSALS,
        )
        stack.telegram.send_text(USER, QUESTION)
        await stack.final_messages(USER, 1, within=30)
        assert texts(stack) == [ANSWER]
        polls = stack.telegram.calls_of("getUpdates")
    first = next(i for i, call in enumerate(polls) if call.answered != "ok")
    refused = polls[first : first + REFUSALS + 1]  # the refusals, and the poll after them
    assert [call.answered == "ok" for call in refused] == [False] * REFUSALS + [True]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(refused)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # not at once: a second, as counted


async def test_a_poll_waiting_out_a_day_long_flood_says_so_and_stops_when_told(
    tmp_path: Path,
) -> None:
    # A proxy's flood wait of a day: the poll waits it (nothing else would get through), read
    # as an hour (``bot.telegram.MOST_RETRY_AFTER``: it asks again then, and waits again if
    # Telegram meant it), with a warning naming the wait, and the bot still stops at once when
    # told (a SIGTERM stops polling the same way: ``Dispatcher.stop_polling``).
    day = 86_400
    with capture_logs() as logs:
        async with running_stack(tmp_path, answer=ANSWER) as stack:
            await stack.telegram.wait_for("getUpdates", lambda c: c.answered == "ok", timeout=10)
            stack.telegram.fail_next(
                "getUpdates",
                status=429,
                description=f"Too Many Requests: retry after {day}",
                retry_after=day,
            )
            await wait_until(
                lambda: any(e["event"] == "telegram.retry_after" for e in logs), within=10
            )
            # The block's end stops polling and waits for it (10 s at most, else it fails).
    waits = [(e["method"], e["seconds"]) for e in logs if e["event"] == "telegram.retry_after"]
    assert waits == [("GetUpdates", MOST_RETRY_AFTER)]
    assert [e["method"] for e in logs if e["event"] == "telegram.retry_after_capped"] == [
        "getUpdates"
    ]
