"""/forget pressed while an answer's follow-up note is still on its way.

``forget`` stopped the user's answer and waited for it (settled, delivered, stored), but not
for what follows it (``handlers.chat._Followup``: the Continue note under a cut answer, a
file's "read the first N%" note, "Stopped.", the topic's title): a note held up by a flood
wait went out after the user had been told their history was erased, under an answer of the
forgotten conversation, with a Continue button for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import FLOOD, HostileTelegram
from tests.harness import rows, wait_until
from tests.test_review23b_continue import ANSWER, CUT_AT

if TYPE_CHECKING:
    from pathlib import Path

USER = 3041


async def test_forget_waits_for_the_answer_s_note_and_says_erased_last(tmp_path: Path) -> None:
    telegram = HostileTelegram(token=TOKEN)
    async with running_stack(
        tmp_path,
        answer=ANSWER,
        max_answer_tokens=CUT_AT,
        min_answer_tokens=8,
        telegram_server=telegram,
    ) as stack:
        texts = stack.veil.catalogs.for_language("en")
        # The note under the cut answer meets flood control once: it waits seconds to go out.
        telegram.flood_s = 4
        telegram.misbehave(
            "sendMessage", FLOOD, when=lambda p: p.get("text") == texts("answer_cut")
        )
        telegram.send_text(USER, "a question")
        await wait_until(lambda: telegram.misbehaved == [("sendMessage", FLOOD)], within=20)
        telegram.send_text(USER, "/forget")
        await wait_until(
            lambda: any(
                m.get("text") == texts("forget_confirm") for m in telegram.sent_messages(USER)
            ),
            within=10,
        )
        (confirm,) = [
            m for m in telegram.sent_messages(USER) if m.get("text") == texts("forget_confirm")
        ]
        (yes, _no) = confirm["reply_markup"]["inline_keyboard"][0]
        telegram.press_button(USER, yes["callback_data"], message_id=confirm["message_id"])
        done = await telegram.wait_for(
            "editMessageText",
            lambda c: c.params.get("text", "").startswith("Done:"),
            timeout=30,
        )
        assert await stack.veil.chat.wait_idle(30)
        order = [
            c.params.get("text")
            for c in telegram.calls
            if c.method in {"sendMessage", "editMessageText"} and c.answered == "ok"
        ]
    assert done.params["text"] == texts("forget_done", turns=2)
    # The note went out (it was on its way), then the erasure was told: nothing after it.
    assert order.index(texts("answer_cut")) < order.index(done.params["text"])
    assert order[-1] == done.params["text"]
    db = tmp_path / "veil.db"
    assert rows(db, "SELECT COUNT(*) FROM turns") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM conversations") == [(0,)]
