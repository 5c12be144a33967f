"""A /model choice pressed while the user's erasure waits for their answer to end.

"Erase everything" pressed on the phone mid-answer, then a model chosen on the laptop: the
choice was saved and said, then erased with the rest once the answer had ended. It is now
saved after the erasure (it was pressed after it), so the model said is the model used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.harness import wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 2428
ANSWER = " ".join(f"fern{i}" for i in range(30))
PAUSE_AT = 10  # the fake model waits after this many tokens
MODELS = ("veil-test", "veil-big")


async def test_a_model_chosen_while_an_erasure_waits_is_kept(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, models=MODELS) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "/model")
        stack.telegram.send_text(USER, "/forget")
        models, confirmation = await stack.final_messages(USER, 2)
        stack.vllm.pauses = {PAUSE_AT}
        stack.telegram.send_text(USER, "a question")
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        erase = confirmation["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        (big,) = [
            row[0]
            for row in models["reply_markup"]["inline_keyboard"]
            if row[0]["text"] == "veil-big"
        ]
        stack.telegram.press_button(USER, erase, message_id=confirmation["message_id"])
        stack.telegram.press_button(USER, big["callback_data"], message_id=models["message_id"])
        await stack.answered_presses(2)
        chosen = texts("model_set", model="veil-big")
        await wait_until(lambda: stack.telegram.sent_messages(USER)[0]["text"] == chosen)
        stack.vllm.pauses = set()
        stack.vllm.resume()
        await wait_until(
            lambda: stack.telegram.sent_messages(USER)[1]["text"] != texts("forget_confirm")
        )
        assert await stack.veil.chat.wait_idle(30)
        assert stack.telegram.sent_messages(USER)[1]["text"] == texts("forget_done", turns=2)
        assert await stack.veil.chat.current_model(USER) == "veil-big"
