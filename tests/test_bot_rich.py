"""Rich answers (Bot API 10.1), end to end: fake Telegram ← real bot → real gateway → fake vLLM.

The answer streams in ``sendRichMessageDraft`` and lands as ``sendRichMessage`` with the model's
Markdown; a server that refuses rich messages gets entities, and one that refuses those too gets
plain text; an answer longer than one rich message is split at block boundaries.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import structlog

from bot import rich
from playground import rich as telegram_rich
from tests.botstack import running_stack, texts_of
from tests.fakes.vllm import FakeVLLM
from tests.test_bot_privacy import assert_absent

if TYPE_CHECKING:
    from pathlib import Path

USER = 7401
RICH = """## Tangerine facts

| Fruit | Colour | Price |
|---|---|---|
| tangerine | orange | 2 |
| hippogriff-berry | blue | 30 |

The area of a circle is $A = \\pi r^2$, and in display:

$$
\\int_0^1 x^2 \\, dx = \\frac{1}{3}
$$

- fruits
  - citrus
    - tangerine
  - berries
- **tools**: a *kettledrum*

```python
def area(r: float) -> float:

    return 3.14159 * r * r
```

> Quoted obsidian wisdom."""

# Blocks of about 700 characters; long words keep the fake's tokens under the gateway's ceiling.
WORD = "Supercalifragilistic-antidisestablishmentarianism-pneumonoultramicroscopic"
CODE = "```text\n" + "\n\n".join(f"line {i} " + WORD for i in range(30)) + "\n```"
LONG = "\n\n".join(
    [f"Block {i}. " + " ".join([WORD] * 9) for i in range(28)]
    + [CODE]
    + [f"Block {i}. " + " ".join([WORD] * 9) for i in range(28, 56)]
)


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def test_rich_answer_arrives_as_one_rich_message(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=RICH, token_delay=0.01, rich_messages=True) as stack:
        stack.telegram.send_text(USER, "Tell me about tangerines")
        (message,) = await stack.final_messages(USER)
        history = await stack.stored_turns(USER, 2)
        sends = stack.telegram.calls_of("sendRichMessage")
        drafts = stack.telegram.calls_of("sendRichMessageDraft")
        plain_drafts = stack.telegram.calls_of("sendMessageDraft")
    assert [call.answered for call in sends] == ["ok"]
    assert sends[0].params["rich_message"] == {"markdown": RICH}
    assert history[-1] == RICH
    assert "text" not in message
    blocks = message["rich_message"]["blocks"]
    assert {"type": "pre", "text": "def area(r: float) -> float:\n\n    return 3.14159 * r * r",
            "language": "python"} in blocks  # fmt: skip
    shown, _ = telegram_rich.text_of(message["rich_message"])
    assert "| hippogriff-berry | blue | 30 |" in shown
    assert "\\frac{1}{3}" in shown
    assert "    - tangerine" in shown
    assert drafts
    assert not plain_drafts
    assert len({d.params["draft_id"] for d in drafts}) == 1
    assert all(d.params["draft_id"] != 0 and d.params.get("can_stop") is True for d in drafts)
    previews = [d.params["rich_message"]["markdown"] for d in drafts]
    assert all(RICH.startswith(md.removesuffix("\n```")) for md in previews)  # a block closed


async def test_refused_rich_messages_fall_back_to_entities(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=RICH, token_delay=0.01, rich_messages=True) as stack:
        stack.telegram.state.rich_messages = False
        stack.telegram.send_text(USER, "Tell me about tangerines")
        (message,) = await stack.final_messages(USER)
        history = await stack.stored_turns(USER, 2)
        sends = stack.telegram.calls_of("sendRichMessage")
        rich_drafts = stack.telegram.calls_of("sendRichMessageDraft")
        drafts = stack.telegram.drafts(USER)
    assert [call.answered for call in sends] == ["Bad Request: rich messages are not supported"]
    assert [call.answered for call in rich_drafts] == [sends[0].answered]  # tried once only
    assert drafts  # the stream went on in plain drafts
    assert "rich_message" not in message
    kinds = {entity["type"] for entity in message["entities"]}
    assert {"bold", "italic", "pre"} <= kinds
    assert "**" not in message["text"]
    assert "tangerine" in message["text"]
    assert "return 3.14159 * r * r" in message["text"]
    assert history[-1] == RICH


async def test_refused_rich_and_entities_fall_back_to_plain_text(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=RICH, rich_messages=True) as stack:
        stack.telegram.state.rich_messages = False
        stack.telegram.fail_next(
            "sendMessage",
            status=400,
            description="Bad Request: can't parse entities: Unsupported start tag",
        )
        stack.telegram.send_text(USER, "Tell me about tangerines")
        (message,) = await stack.final_messages(USER)
        sends = stack.telegram.calls_of("sendMessage")
    assert [call.answered != "ok" for call in sends] == [True, False]
    assert not message.get("entities")
    assert "return 3.14159 * r * r" in message["text"]
    assert "| hippogriff-berry | blue | 30 |" in message["text"] or "hippogriff" in message["text"]
    assert texts_of(sends)[0] == texts_of(sends)[1]  # the same text, only unformatted


async def test_long_answer_splits_into_rich_messages_at_block_boundaries(tmp_path: Path) -> None:
    assert 40_000 <= len(LONG) <= 45_000
    async with running_stack(
        tmp_path, answer=LONG, max_answer_tokens=2000, rich_messages=True
    ) as stack:
        stack.telegram.send_text(USER, "Write a lot")
        messages = await stack.final_messages(USER, 2)
        history = await stack.stored_turns(USER, 2)
        sends = stack.telegram.calls_of("sendRichMessage")
    assert history[-1] == LONG
    assert all(call.answered == "ok" for call in sends)
    parts = [call.params["rich_message"]["markdown"] for call in sends]
    assert len(parts) == len(messages) == 2
    assert all(units(part) <= rich.MAX_CHARS for part in parts)
    assert "\n\n".join(parts) == LONG
    blocks = set(rich.split_blocks(LONG))
    assert CODE in blocks  # the blank lines inside the fence part nothing
    for part in parts:
        assert set(rich.split_blocks(part)) <= blocks  # every part is whole blocks


async def test_rich_text_is_not_in_the_logs(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        async with running_stack(
            tmp_path, answer=RICH, token_delay=0.01, rich_messages=True
        ) as stack:
            stack.telegram.send_text(USER, "Tell me")
            await stack.final_messages(USER)
            await stack.stored_turns(USER, 2)
            stack.telegram.state.rich_messages = False  # the fallback logs its refusals too
            stack.telegram.send_text(USER, "Again")
            await stack.final_messages(USER, 2)
            await stack.stored_turns(USER, 4)
    rendered = json.dumps(logs, default=str)
    assert "streaming.rich_rejected" in rendered
    assert "streaming.rich_draft_rejected" in rendered
    assert_absent(rendered.encode())  # tangerine, hippogriff, obsidian, kettledrum


async def test_thinking_shows_in_a_rich_draft_and_folded_before_the_answer(
    tmp_path: Path,
) -> None:
    thought = "Recall the tangerine table first, then answer."
    server = FakeVLLM(answer=RICH, token_delay=0.02)
    server.reasoning = thought
    async with running_stack(tmp_path, model_server=server, rich_messages=True) as stack:
        stack.telegram.send_text(USER, "Tell me")
        messages = await stack.final_messages(USER, 2)
        history = await stack.stored_turns(USER, 2)
        drafts = stack.telegram.calls_of("sendRichMessageDraft")
    thinking = [
        d.params["rich_message"]["blocks"] for d in drafts if "blocks" in d.params["rich_message"]
    ]
    assert thinking
    assert all(b[0]["type"] == "thinking" and thought.startswith(b[0]["text"]) for b in thinking)
    folded, answer = messages
    assert folded["entities"][0]["type"] == "expandable_blockquote"
    assert thought in folded["text"]
    assert answer["rich_message"]["blocks"]
    assert history[-1] == RICH
    assert all(thought not in turn for turn in history)


async def test_a_part_refused_mid_answer_sends_the_rest_as_entities_once(tmp_path: Path) -> None:
    wide = "|" + "c|" * 21 + "\n|" + "-|" * 21 + "\n|" + "1|" * 21  # past 20 columns
    first = [f"Block {i}. " + " ".join([WORD] * 9) for i in range(50)]
    answer = "\n\n".join([*first, wide, "Last words after the table."])
    async with running_stack(
        tmp_path, answer=answer, max_answer_tokens=2000, rich_messages=True
    ) as stack:
        stack.telegram.send_text(USER, "Write a lot")
        history = await stack.stored_turns(USER, 2)
        assert await stack.veil.chat.wait_idle(10)  # stored with its charge, sent meanwhile
        messages = stack.telegram.sent_messages(USER)
        sends = stack.telegram.calls_of("sendRichMessage")
    assert history[-1] == answer
    assert [call.answered for call in sends] == ["ok", "Bad Request: RICH_MESSAGE_TABLE_TOO_WIDE"]
    first_part = sends[0].params["rich_message"]["markdown"]
    rest = sends[1].params["rich_message"]["markdown"]
    assert f"{first_part}\n\n{rest}" == answer
    assert rest.startswith("Block ")  # parted at a block boundary, before the table
    rich_message, *entity_messages = messages
    assert "rich_message" in rich_message
    assert entity_messages
    assert all("text" in m for m in entity_messages)
    shown = "\n\n".join(m["text"] for m in entity_messages)
    assert shown.endswith("Last words after the table.")
    assert shown.count("Block ") == rest.count("Block ")  # nothing sent twice, nothing lost


async def test_a_rate_limited_rich_draft_waits_and_goes_on(tmp_path: Path) -> None:
    answer = " ".join(f"w{i}" for i in range(60))
    async with running_stack(
        tmp_path, answer=answer, token_delay=0.05, rich_messages=True
    ) as stack:
        stack.telegram.fail_next(
            "sendRichMessageDraft", status=429, description="Too Many Requests", retry_after=1
        )
        stack.telegram.send_text(USER, "Go")
        (message,) = await stack.final_messages(USER)
        drafts = stack.telegram.calls_of("sendRichMessageDraft")
    assert message["rich_message"]["blocks"] == [{"type": "paragraph", "text": answer}]
    assert drafts[0].answered != "ok"
    later = [d for d in drafts[1:] if d.answered == "ok"]
    assert later
    assert later[0].at - drafts[0].at >= 0.9  # the wait Telegram asked for
    # The draft loop waits it out and sends what has arrived by then, not the session's retry
    # of the refused draft (a second old text, a second after the words moved on).
    assert later[0].params["rich_message"] != drafts[0].params["rich_message"]
    assert not stack.telegram.calls_of("sendMessageDraft")  # a 429 is no refusal
