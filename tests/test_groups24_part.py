"""A part of a group answer shown before a bug: noted for the group, the asker there or gone.

A part of a group answer already shown stays when the answer fails. After a model's failure
it got the note such a failure leaves under it, for anyone; after a bug (or Telegram away) it
got nothing: the group read a part that stopped mid-way, its stop button gone, as if it were
the whole answer. It now gets a note for anyone that the answer broke off there. An asker
still in the group is apologised to alone (review24b: the note was first added only for one
gone); for an asker who left (or was banned) the apology is dropped: a notice for them alone
cannot reach one out of the group (``groups.notice_dropped``).

Here the answer's last steps are driven by hand, over the real bot's editors and the fake
Telegram: no bug of the bot's is known to fail an answer after its final edit, and one that
does takes this path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import structlog

from handlers.failures import Asker
from handlers.groups.answer import GroupAnswer
from services.answers import Shown
from tests.botstack import running_stack
from tests.test_bot_groups import BOB, FAST, GROUP

if TYPE_CHECKING:
    from pathlib import Path

PART = "The first half of an answer about the tangerine-hippogriff-93, and then"
NOTE = "⚠️ The answer broke off here. Ask again for the whole answer."
SORRY = "Something went wrong"


@pytest.mark.parametrize("left", [True, False], ids=["asker_gone", "asker_present"])
async def test_a_part_shown_before_a_bug_is_noted_for_the_group(
    tmp_path: Path, *, left: bool
) -> None:
    async with running_stack(tmp_path, **FAST) as stack:
        kit = stack.veil.dispatcher["kit"]
        texts = stack.veil.dispatcher["catalogs"].for_language("en")
        stack.telegram.state.set_member(GROUP, BOB, "member")
        stack.telegram.send_text(BOB, "a word to the group", chat_id=GROUP)  # not for Veil
        (asked,) = stack.telegram.state.chat_messages(GROUP)
        answer = GroupAnswer(
            kit, texts, Asker(GROUP, BOB, asked["message_id"]), "en", "a question", ()
        )
        placeholder = await kit.editors.post(
            GROUP, texts("group_placeholder"), reply_to=asked["message_id"], markup=None
        )
        answer.shown = Shown(BOB, chat_id=GROUP, message_id=placeholder)
        answer.sink = await kit.editors.in_chat(
            GROUP, placeholder, stop_markup=None, more_label=texts("read_whole")
        )
        await answer.sink.begin()
        await answer.sink.append(PART)
        await answer.sink.complete(PART)  # the part the answer showed before the bug
        if left:
            stack.telegram.state.set_member(GROUP, BOB, "left")
        with structlog.testing.capture_logs() as logs:
            await answer.failed(RuntimeError("a bug"))
        shown = stack.telegram.state.message(GROUP, placeholder)
        told_bob = [m["text"] for m in stack.telegram.ephemeral_messages(GROUP, BOB)]
        public = [m["text"] for m in stack.telegram.sent_messages(GROUP)]
    assert shown is not None
    assert shown["text"] == f"{PART}\n\n{NOTE}"
    assert public == [shown["text"]]  # no apology in the group
    events = [e["event"] for e in logs]
    assert "handler_failed" in events  # the bug, logged as ever
    if left:
        assert told_bob == []
        assert "groups.notice_dropped" in events
    else:
        assert len(told_bob) == 1
        assert SORRY in told_bob[0]  # the apology, to him alone
