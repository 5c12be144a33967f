"""Rich answers outside private chats: group, inline and guest answers edited into rich messages.

Fake Telegram (the playground's emulator) ← real bot → real gateway → fake vLLM. The answer's
final edit carries the model's Markdown as a rich message (``editMessageText(rich_message=…)``);
a server that refuses rich content gets entities, one that refuses those too gets plain text; a
reasoning model's thinking is a collapsed details block at the top of the final answer (an
expandable quote in entities), or nothing with ``VEIL_SHOW_REASONING`` off, and never on disk.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import structlog

from bot import rich
from playground import rich as telegram_rich
from playground.wire import ApiError
from tests.botstack import TOKEN, Stack, running_stack
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import wait_until
from tests.test_bot_groups import ANN, BOB, GROUP, final_reply
from tests.test_bot_inline import ask_inline, edits_of, final_edit
from tests.test_bot_privacy import assert_absent, disk_bytes
from tests.test_bot_rich import LONG, RICH

if TYPE_CHECKING:
    from pathlib import Path

    from playground.state import Method
    from tests.fakes.telegram import Call

USER = 9301
QUESTION = "Tell me about tangerines, *please*"
FAST: dict[str, Any] = {
    "edit_interval": 0.2,
    "group_messages_per_minute": 900,
    "rich_messages": True,
}
SHORT = "**Tangerine** is `orange`."  # under the 40 characters that make a progress edit
THOUGHT = "Recall the obsidian table first, then the kettledrum maths."
PARSE_ERROR = "Bad Request: can't parse entities: Unsupported start tag"


class HeldFinal(FakeTelegram):
    """``FakeTelegram`` that makes the first final edit in ``GROUP`` but holds its answer.

    The answer is final in the group (no stop button: what a member, and ``final_reply``, see)
    while the bot waits to hear so, until ``release``; ``holding`` is set once it waits. The
    bot lets the asker ask in the group again only after that (``GroupAnswer.run``).
    ``refusal``: that edit is not made but refused so once released (the message deleted
    meanwhile, say).
    """

    def __init__(self, refusal: str | None = None, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(**kwargs)
        self.refusal = refusal
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self._edit: Method = self._methods["editMessageText"]
        self._methods["editMessageText"] = self._held_edit

    async def _held_edit(self, p: dict[str, Any]) -> object:
        final = "stop:" not in json.dumps(p.get("reply_markup") or {})
        held = p.get("chat_id") == GROUP and final and not self.holding.is_set()
        if held and self.refusal is not None:
            self.holding.set()
            await self.release.wait()
            raise ApiError(HTTPStatus.BAD_REQUEST, self.refusal)
        edited = self._edit(p)
        edited = await edited if asyncio.iscoroutine(edited) else edited
        if held:
            self.holding.set()
            await self.release.wait()
        return edited


def group_edits(stack: Stack) -> list[Call]:
    return [
        call
        for call in stack.telegram.calls_of("editMessageText")
        if call.params.get("chat_id") == GROUP
    ]


def shown(blocks: list[dict[str, Any]]) -> str:
    return telegram_rich.text_of({"blocks": blocks})[0]


def assert_the_rich_answer(blocks: list[dict[str, Any]]) -> None:
    """The blocks of ``RICH`` as Telegram keeps them: table, formula, nested lists, code."""
    kinds = [block["type"] for block in blocks]
    assert kinds == [
        "heading", "table", "paragraph", "mathematical_expression", "list", "pre", "blockquote",
    ]  # fmt: skip
    table = blocks[1]["cells"]
    assert [cell["text"] for cell in table[2]] == ["hippogriff-berry", "blue", "30"]
    assert blocks[3]["expression"] == "\\int_0^1 x^2 \\, dx = \\frac{1}{3}"
    citrus = blocks[4]["items"][0]["blocks"][1]["items"][0]
    assert citrus["blocks"][1]["items"][0]["blocks"] == [{"type": "paragraph", "text": "tangerine"}]
    assert blocks[5] == {
        "type": "pre",
        "text": "def area(r: float) -> float:\n\n    return 3.14159 * r * r",
        "language": "python",
    }


async def ask_in_group(stack: Stack, question: str = QUESTION) -> dict[str, Any]:
    stack.telegram.send_text(ANN, f"/ask {question}", chat_id=GROUP)
    (final,) = await final_reply(stack)
    return final


async def test_a_group_answer_is_one_rich_message(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=RICH, token_delay=0.01, **FAST) as stack:
        final = await ask_in_group(stack)
        edits = group_edits(stack)
    assert "text" not in final
    assert_the_rich_answer(final["rich_message"]["blocks"])
    assert [call.answered for call in edits] == ["ok"] * len(edits)
    assert all("rich_message" in call.params for call in edits)
    assert edits[-1].params["rich_message"] == {"markdown": RICH}
    assert len(edits) >= 2  # it grew by paced edits before the final one
    previews = [call.params["rich_message"]["markdown"] for call in edits[:-1]]
    assert all(RICH.startswith(markdown.removesuffix("\n```")) for markdown in previews)
    assert len(set(previews)) == len(previews)  # never the same content twice


async def test_an_inline_answer_is_one_rich_edit_under_its_question(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=RICH, token_delay=0.01, **FAST) as stack:
        _, inline_id = await ask_inline(stack, USER, QUESTION)
        final = await final_edit(stack, inline_id)
        edits = edits_of(stack, inline_id)
    header = rich.escape(f"❓ {QUESTION}") + "\n\n"
    assert edits[-1].params["rich_message"] == {"markdown": header + RICH}
    assert all(call.answered == "ok" for call in edits)
    question, *answer = final["rich_message"]["blocks"]
    assert question == {"type": "paragraph", "text": f"❓ {QUESTION}"}  # as typed, not italic
    assert_the_rich_answer(answer)
    assert "text" not in final


async def test_refused_rich_edits_fall_back_to_entities_once_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=RICH, token_delay=0.01, **FAST) as stack:
        stack.telegram.state.rich_messages = False
        final = await ask_in_group(stack)
        _, inline_id = await ask_inline(stack, USER, QUESTION)
        inline = await final_edit(stack, inline_id)
        edits = {"group": group_edits(stack), "inline": edits_of(stack, inline_id)}
    for where, calls in edits.items():
        tried = [call for call in calls if "rich_message" in call.params]
        assert [call.answered for call in tried] == [
            "Bad Request: rich messages are not supported"
        ], where  # tried once: the rest of that answer goes in entities
        assert calls[0] is tried[0], where
    for message in (final, inline):
        assert "rich_message" not in message
        kinds = {entity["type"] for entity in message["entities"]}
        assert {"bold", "italic", "pre"} <= kinds
        assert "return 3.14159 * r * r" in message["text"]
        assert "**" not in message["text"]


async def test_refused_rich_and_entities_fall_back_to_plain_text(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=SHORT, **FAST) as stack:
        for _ in range(2):
            stack.telegram.fail_next("editMessageText", status=400, description=PARSE_ERROR)
        final = await ask_in_group(stack)
        for _ in range(2):
            stack.telegram.fail_next("editMessageText", status=400, description=PARSE_ERROR)
        _, inline_id = await ask_inline(stack, USER, QUESTION)
        inline = await final_edit(stack, inline_id)
        edits = {"group": group_edits(stack), "inline": edits_of(stack, inline_id)}
    for where, (rich_try, entities_try, plain) in edits.items():
        assert "rich_message" in rich_try.params, where
        assert entities_try.params.get("entities"), where
        assert not plain.params.get("entities"), where
        assert [c.answered for c in (rich_try, entities_try, plain)] == [
            PARSE_ERROR, PARSE_ERROR, "ok",
        ], where  # fmt: skip
        assert plain.params["text"] == entities_try.params["text"], where
    assert final["text"] == "Tangerine is orange."
    assert not final.get("entities")
    assert inline["text"].endswith("Tangerine is orange.")


async def test_the_thinking_is_collapsed_above_a_group_answer_and_never_stored(
    tmp_path: Path,
) -> None:
    # The second question came as the first answer's final edit was made, before the bot had
    # Telegram's answer to it: asked by the same member, it was told to wait its turn (one
    # question a member at a time), and no second answer came (CI, under load). The held final
    # edit makes that moment certain; another member asks, and waits for the turn.
    server = FakeVLLM(answer=RICH, token_delay=0.01)
    server.reasoning = THOUGHT
    telegram = HeldFinal(token=TOKEN)
    with structlog.testing.capture_logs() as logs:
        async with running_stack(
            tmp_path, model_server=server, telegram_server=telegram, **FAST
        ) as stack:
            final = await ask_in_group(stack)
            await asyncio.wait_for(telegram.holding.wait(), 10)
            stack.telegram.state.rich_messages = False
            stack.telegram.send_text(BOB, "/ask again", chat_id=GROUP)
            await wait_until(lambda: telegram.updates.pending == [])  # the bot has it
            telegram.release.set()
            folded = (await final_reply(stack, 2))[-1]
            markdowns = [
                c.params["rich_message"]["markdown"]
                for c in group_edits(stack)
                if "rich_message" in c.params and c.answered == "ok"
            ]
    details, *answer = final["rich_message"]["blocks"]
    assert details["type"] == "details"
    assert not details.get("is_open")  # collapsed: the reader opens it
    assert shown([{"type": "paragraph", "text": details["summary"]}]).startswith("💭 Recall")
    assert shown(details["blocks"]) == THOUGHT
    assert_the_rich_answer(answer)
    assert all(THOUGHT not in markdown for markdown in markdowns[:-1])  # only the final shows it
    assert folded["entities"][0]["type"] == "expandable_blockquote"
    assert folded["text"].startswith("💭 " + THOUGHT + "\n")
    assert_absent(disk_bytes(tmp_path))  # obsidian, kettledrum: neither thought nor answer
    assert_absent(json.dumps(logs, default=str).encode())


async def test_hidden_thinking_is_not_shown_in_a_group(tmp_path: Path) -> None:
    server = FakeVLLM(answer=SHORT, token_delay=0.01)
    server.reasoning = THOUGHT
    async with running_stack(tmp_path, model_server=server, show_reasoning=False, **FAST) as stack:
        final = await ask_in_group(stack)
        sent = json.dumps([c.params for c in stack.telegram.calls_of("editMessageText")])
    assert [block["type"] for block in final["rich_message"]["blocks"]] == ["paragraph"]
    assert "obsidian" not in sent
    assert_absent(disk_bytes(tmp_path))


async def test_past_one_rich_message_the_first_part_is_rich_with_a_link_to_the_whole(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=LONG, max_answer_tokens=2000, **FAST) as stack:
        final = await ask_in_group(stack)
        last = group_edits(stack)[-1]
    first = rich.rich_parts(LONG, limit=rich.MAX_CHARS - 3)[0]
    assert last.params["rich_message"] == {"markdown": first + "\n\n…"}
    assert len(first) > 4 * 4096  # far more than one text message holds
    assert shown(final["rich_message"]["blocks"][-1:]) == "…"
    (button,) = [b for row in final["reply_markup"]["inline_keyboard"] for b in row]
    assert button["text"] == "📖 Read the whole answer"
    assert "?start=a_" in button["url"]


async def test_a_rich_answer_cut_at_its_length_limit_says_so_under_it(tmp_path: Path) -> None:
    note = "✂️ The answer reached its length limit; ask for more in the private chat with Veil."
    answer = " ".join(f"tangerine-{n}" for n in range(60))
    async with running_stack(
        tmp_path, answer=answer, max_answer_tokens=16, min_answer_tokens=8, **FAST
    ) as stack:
        await ask_in_group(stack)
        async with asyncio.timeout(10):
            while "length limit" not in json.dumps(group_edits(stack)[-1].params):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        (message,) = stack.telegram.sent_messages(GROUP)
    *said, noted = message["rich_message"]["blocks"]
    assert noted == {"type": "paragraph", "text": note}
    assert shown(said).startswith("tangerine-0 tangerine-1")
    assert answer not in shown(said)  # cut
