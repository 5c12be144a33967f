"""A part of a group answer shown before a bug, for an asker still there: noted for the group too.

After a bug (or Telegram away) following the part of a group answer shown, an asker gone from
the group got no apology and the part a note for anyone ("The answer broke off here"), so that
the group did not read it as the whole answer (``_GroupAnswer._let_go``). For an asker still
in the group the part stayed as it was, with no note: the asker was told alone, and everyone
else read the same part, cut off mid-way, as a whole answer. It now gets the same note; the
apology still goes to the asker alone.

Driven by hand over the real bot's editors and the fake Telegram, as
``tests/test_groups24_part.py`` is: no failure of the bot's is known to come after the final
edit of a group answer, and one that does takes this path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.failures import Asker
from handlers.groups import _GroupAnswer
from services.answers import Shown
from tests.botstack import running_stack
from tests.test_bot_groups import BOB, FAST, GROUP
from tests.test_groups24_part import NOTE, PART

if TYPE_CHECKING:
    from pathlib import Path

SORRY = "Something went wrong"


async def test_a_part_shown_before_a_bug_for_an_asker_present_is_noted_for_the_group(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **FAST) as stack:
        kit = stack.veil.dispatcher["kit"]
        texts = stack.veil.dispatcher["catalogs"].for_language("en")
        stack.telegram.state.set_member(GROUP, BOB, "member")
        stack.telegram.send_text(BOB, "a word to the group", chat_id=GROUP)  # not for Veil
        (asked,) = stack.telegram.state.chat_messages(GROUP)
        answer = _GroupAnswer(
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
        await answer.failed(RuntimeError("a bug"))  # Bob is still in the group
        shown = stack.telegram.state.message(GROUP, placeholder)
        told_bob = [m["text"] for m in stack.telegram.ephemeral_messages(GROUP, BOB)]
        public = [m["text"] for m in stack.telegram.sent_messages(GROUP)]
    assert shown is not None
    assert shown["text"] == f"{PART}\n\n{NOTE}"
    assert len(told_bob) == 1
    assert SORRY in told_bob[0]  # the apology, to him alone
    assert public == [shown["text"]]
