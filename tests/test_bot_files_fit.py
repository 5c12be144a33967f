"""A long question (a text file, a long paste) and a title request, fitted to the model's window.

Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``. The fake counts
tokens its own way (a word a token, far fewer than the bytes the bot counts by) and refuses a
prompt over its window as vLLM does, in vLLM's words, which state the prompt's tokens. A
question too long by its bytes for the room the answer is kept is asked with that room all the
same; a refusal says how long it really is, and a file is then cut to its start (the user told
how much was read), anything else asked for what the window leaves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from services.audit import Auditor
from services.documents import TextFile
from services.fitting import context_refusal
from services.titles import TITLE_PROMPT, TITLE_TOKENS, title_messages
from services.tokens import prompt_tokens
from tests.botstack import running_stack
from tests.fakes.llama_server import FakeLlamaServer
from tests.fakes.vllm import FakeVLLM

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

USER = 9701
WINDOW, ROOM = 1024, 256
ANSWER = " ".join(["tide"] * 100)  # within the answer's room, not within 64 tokens


def settings(**more: Any) -> dict[str, Any]:  # noqa: ANN401
    return {"context_tokens": WINDOW, "max_answer_tokens": ROOM, **more}


def fitted(server: FakeVLLM) -> list[tuple[int, int]]:
    """(prompt tokens as the model server counted, answer tokens asked) of each request."""
    asked = [request["max_completion_tokens"] for request in server.requests]
    return list(zip(server.prompt_counts, asked, strict=True))


async def used(stack: Stack) -> list[tuple[str, int, int]]:
    """(outcome, prompt tokens, completion tokens) each of the user's holds was closed with."""
    rows = await stack.veil.store.read(
        lambda db: db.execute(
            "SELECT outcome, prompt_used, completion_used FROM holds WHERE user_id = ?"
            " ORDER BY created_at, rowid",
            [USER],
        ).fetchall()
    )
    return [(str(outcome), int(p or 0), int(c or 0)) for outcome, p, c in rows]


async def test_a_file_too_long_by_its_bytes_but_not_its_tokens_gets_a_whole_answer(
    tmp_path: Path,
) -> None:
    # 2,600 bytes the model reads in about 520 tokens: by its bytes over the 768 the context may
    # take, so it was asked with 64 answer tokens (``min_answer_tokens``), a stub of a summary.
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    body = ("The coast, the tide, the wind. " * 84).encode()
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        stack.telegram.send_document(USER, body, file_name="notes.txt", caption="Summarise")
        turns = await stack.stored_turns(USER, 2)
        sent = await stack.final_messages(USER)
    assert len(body) > WINDOW - ROOM
    assert fitted(server) == [(server.prompt_counts[0], ROOM)]  # asked once, with the room
    assert server.prompt_counts[0] + ROOM <= WINDOW
    assert turns[1] == ANSWER
    assert [message["text"] for message in sent] == [ANSWER]  # no note: the file was read whole


async def test_a_file_too_long_for_the_window_is_cut_and_the_user_told_how_much_was_read(
    tmp_path: Path,
) -> None:
    # 1,500 words: over the model's window however counted. It was asked with a 64-token answer,
    # refused, and the user told "your message is too long"; the file was never read at all.
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    text = " ".join(f"w{n % 10}" for n in range(1500))
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        stack.telegram.send_document(USER, text.encode(), file_name="long.txt", caption="Sum up")
        turns = await stack.stored_turns(USER, 2)
        answer, note = await stack.final_messages(USER, 2)
        await stack.veil.chat.wait_idle(10)
        holds = await used(stack)
    # By the model server's count (/tokenize) the file did not fit at all: the gateway refused
    # it before the model was asked; the part of it read was asked once.
    ((read, asked),) = fitted(server)
    assert server.tokenize_requests
    assert asked == ROOM  # the answer kept its room: the file was cut to leave it
    assert read + asked <= WINDOW
    kept = int(turns[0].split("only its first ", 1)[1].split(" ", 1)[0])
    assert turns[0] == TextFile("long.txt", text, "Sum up").question(kept)
    assert turns[0].endswith("\n```\n\nSum up")  # the question after the part read
    assert answer["text"] == turns[1] == ANSWER
    percent = kept * 100 // len(text)
    assert 40 <= percent < 100
    assert note["text"] == (
        f"📄 The file was too long for the model to read whole and still leave room for an"
        f" answer: it read the first {percent}% of it, and the answer is about that part. To ask"
        " about the rest, send it as a smaller file or paste it into a message."
    )
    # The refused request cost nothing; the answer was charged from its own receipt.
    assert holds == [("settled", 0, 0), ("settled", read, 100)]


async def test_a_file_with_a_long_question_is_cut_by_the_count_not_refused(
    tmp_path: Path,
) -> None:
    # A question the model reads in 200 tokens but whose ceiling (its bytes) is past the budget
    # by itself: the rest of the question was measured by that ceiling alone, so the file was
    # not cut but refused as too long, though a start of it fitted beside the question.
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    text = " ".join(f"w{n % 10}" for n in range(1500))
    question = " ".join(["Why?"] * 200)
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        stack.telegram.send_document(USER, text.encode(), file_name="long.txt", caption=question)
        turns = await stack.stored_turns(USER, 2)
        await stack.final_messages(USER, 2)
    assert prompt_tokens([{"role": "user", "content": question}]) > WINDOW - ROOM
    ((read, asked),) = fitted(server)
    assert read + asked <= WINDOW
    kept = int(turns[0].split("only its first ", 1)[1].split(" ", 1)[0])
    assert kept > 0
    assert turns[0] == TextFile("long.txt", text, question).question(kept)
    assert turns[1] == ANSWER


async def test_a_file_far_over_the_window_is_held_at_most_the_window(tmp_path: Path) -> None:
    # 4,000 words, 23,890 bytes: held as a prompt of ~24,000 tokens (its bytes), far over the
    # 1,024 the model can read and a gateway would bill. A user whose 3,000 free tokens a day
    # pay for a whole window and an answer was told "not enough credit".
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    text = " ".join(f"w{n % 10}" for n in range(4000))
    async with running_stack(
        tmp_path, model_server=server, free_tokens_per_day=3000, **settings()
    ) as stack:
        stack.telegram.send_document(USER, text.encode(), file_name="long.txt", caption="Sum up")
        turns = await stack.stored_turns(USER, 2)
        answer, note = await stack.final_messages(USER, 2)
        await stack.veil.chat.wait_idle(10)
        held = await stack.veil.store.read(
            lambda db: db.execute(
                "SELECT prompt_tokens FROM holds WHERE user_id = ? ORDER BY created_at, rowid",
                [USER],
            ).fetchall()
        )
    assert prompt_tokens([{"role": "user", "content": text}]) > 3000
    assert held[0][0] == WINDOW  # the whole file sent, held as the window
    assert answer["text"] == turns[1] == ANSWER
    assert "it read the first" in note["text"]


async def test_a_file_llama_server_refuses_is_cut_by_the_count_it_states(tmp_path: Path) -> None:
    # The run command's local model is llama.cpp's server, whose refusal ("request (N tokens)
    # exceeds the available context size (C tokens)") the bot did not read a count from: a file
    # too long for it was cut by its bytes, about a quarter of what fits.
    server = FakeLlamaServer(answer=ANSWER, models=("veil-test",), max_model_len=WINDOW)
    text = " ".join(f"w{n % 10}" for n in range(1500))
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        stack.telegram.send_document(USER, text.encode(), file_name="long.txt", caption="Sum up")
        turns = await stack.stored_turns(USER, 2)
        answer, note = await stack.final_messages(USER, 2)
        await stack.veil.chat.wait_idle(10)
        holds = await used(stack)
    (refused, first), (read, asked) = fitted(server)
    assert refused >= WINDOW
    assert first == asked == ROOM
    assert WINDOW // 2 <= read < WINDOW - ROOM  # by the count it stated, not the bytes
    kept = int(turns[0].split("only its first ", 1)[1].split(" ", 1)[0])
    assert answer["text"] == turns[1] == ANSWER
    assert 40 <= kept * 100 // len(text) < 100
    assert f"it read the first {kept * 100 // len(text)}% of it" in note["text"]
    assert holds == [("settled", 0, 0), ("settled", read, 100)]


@pytest.mark.parametrize("wording", ["counts_at_least", "counts_passed"])
async def test_a_file_refused_without_its_count_is_cut_by_its_bytes(
    tmp_path: Path, wording: str
) -> None:
    # No count to fit by ("at least", a later vLLM's words; "You passed N input tokens …", its
    # renderer's, whose N stops one past the room: before, the gateway took that refusal for a
    # backend failure, and the user read "the model could not answer"): cut to the budget by
    # its bytes, which always fits, the answer keeping its room and the user told how much was
    # read.
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    setattr(server, wording, True)
    server.tokenize_available = False  # else the gateway counts it, and refuses by that count
    text = " ".join(f"w{n % 10}" for n in range(1500))
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        stack.telegram.send_document(USER, text.encode(), file_name="long.txt", caption="Sum up")
        turns = await stack.stored_turns(USER, 2)
        answer, note = await stack.final_messages(USER, 2)
        await stack.veil.chat.wait_idle(10)
        holds = await used(stack)
    (_, first), (read, asked) = fitted(server)
    assert first == asked == ROOM
    assert prompt_tokens([{"role": "user", "content": turns[0]}]) <= WINDOW - ROOM  # by bytes
    kept = int(turns[0].split("only its first ", 1)[1].split(" ", 1)[0])
    assert answer["text"] == turns[1] == ANSWER
    assert f"it read the first {kept * 100 // len(text)}% of it" in note["text"]
    assert holds == [("settled", 0, 0), ("settled", read, 100)]


async def test_retry_of_a_file_whose_answer_failed_cuts_it_again(tmp_path: Path) -> None:
    # The model server failed the file's first request; Retry resent its text alone, no longer a
    # file: refused as too long, it could not be cut, and the user was told to shorten it.
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    server.fail_before_stream = (500, "the model server broke")
    text = " ".join(f"w{n % 10}" for n in range(1500))
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        telegram = stack.telegram
        telegram.send_document(USER, text.encode(), file_name="long.txt", caption="Sum up")
        (failed,) = await stack.final_messages(USER)
        (button,) = failed["reply_markup"]["inline_keyboard"][0]
        server.fail_before_stream = None
        telegram.press_button(USER, button["callback_data"], message_id=failed["message_id"])
        turns = await stack.stored_turns(USER, 2)
        _, answer, note = await stack.final_messages(USER, 3)
        await stack.veil.chat.wait_idle(10)
        report = await Auditor(stack.veil.store, [stack.gateway.verify_key]).run()
    kept = int(turns[0].split("only its first ", 1)[1].split(" ", 1)[0])
    assert turns[0] == TextFile("long.txt", text, "Sum up").question(kept)
    assert answer["text"] == turns[1] == ANSWER
    assert f"it read the first {kept * 100 // len(text)}% of it" in note["text"]
    assert report.problems == []


async def test_a_15_kb_file_in_a_16k_window_gets_the_answers_whole_room(tmp_path: Path) -> None:
    # 15,500 bytes (about 3,100 of the model's tokens): its bytes alone took the 15,360 tokens
    # the context may have in a 16,384 window, so it was asked with 64 answer tokens.
    window = 16_384
    server = FakeVLLM(answer=ANSWER, max_model_len=window)
    body = ("The coast, the tide. " * 739).encode()
    async with running_stack(
        tmp_path, model_server=server, context_tokens=window, max_answer_tokens=1024
    ) as stack:
        stack.telegram.send_document(USER, body, file_name="log.txt", caption="What happened?")
        turns = await stack.stored_turns(USER, 2)
    assert len(body) > window - 1024
    assert fitted(server) == [(server.prompt_counts[0], 1024)]
    assert turns[1] == ANSWER


async def test_a_file_that_fits_with_half_the_room_is_read_whole_for_a_shorter_answer(
    tmp_path: Path,
) -> None:
    # 780 words: the window holds it and an answer of at least half the usual room. Reading it
    # whole beats a full-length answer about part of it.
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    text = " ".join(f"w{n % 10}" for n in range(780))
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        stack.telegram.send_document(USER, text.encode(), file_name="mid.txt", caption="Sum up")
        turns = await stack.stored_turns(USER, 2)
        sent = await stack.final_messages(USER)
    (counted, first), (again, asked) = fitted(server)
    assert first == ROOM
    assert again == counted  # the same question, the file whole
    assert ROOM // 2 <= asked == WINDOW - counted < ROOM
    assert turns == [TextFile("mid.txt", text, "Sum up").question(), ANSWER]
    assert [message["text"] for message in sent] == [ANSWER]  # no note: read whole


async def test_a_long_paste_that_leaves_less_than_the_room_is_asked_for_what_the_window_leaves(
    tmp_path: Path,
) -> None:
    # 850 words in 2,550 bytes: asked with the 64 tokens its bytes left, where the model,
    # counting 850 and some, had room for more than twice that.
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    paste = " ".join(["ab"] * 850)
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        stack.telegram.send_text(USER, paste)
        turns = await stack.stored_turns(USER, 2)
    (counted, first), (again, asked) = fitted(server)
    assert first == ROOM
    assert counted == again  # the same prompt, whole
    assert asked == WINDOW - counted > 64
    assert turns == [paste, ANSWER]


@pytest.mark.parametrize("wording", ["counts_at_least", "counts_passed"])
async def test_a_long_paste_refused_without_its_count_is_asked_for_the_shortest_answer(
    tmp_path: Path, wording: str
) -> None:
    # Later vLLM states only "at least" the prompt's tokens (it stops counting one past what the
    # answer leaves), or "You passed N input tokens" with N as short: no count to fit by. The
    # paste, asked with the room, was then refused and the user told it is too long (or, in the
    # second wording, told the model had failed), though asked as before (``min_answer_tokens``)
    # it fits.
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    setattr(server, wording, True)
    paste = " ".join(["ab"] * 850)
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        stack.telegram.send_text(USER, paste)
        turns = await stack.stored_turns(USER, 2)
        await stack.veil.chat.wait_idle(10)
        holds = await used(stack)
        report = await Auditor(stack.veil.store, [stack.gateway.verify_key]).run()
    (_, first), (counted, asked) = fitted(server)
    assert first == ROOM
    assert asked == 64  # the shortest answer worth having, as it was asked before
    assert turns[0] == paste
    assert turns[1] == " ".join(["tide"] * 64)
    assert holds == [("settled", 0, 0), ("settled", counted, 64)]  # the refusal cost nothing
    assert report.problems == []


class ByteTokens(FakeVLLM):
    """A model server whose tokenizer makes a token of each byte, as a byte-level BPE can."""

    def text_tokens(self, text: str) -> int:
        """One token a UTF-8 byte."""
        return len(text.encode())


async def test_a_title_request_is_fitted_to_a_small_window(tmp_path: Path) -> None:
    # The title request showed 600 characters of each side whatever the window: in a window of
    # 512 it was refused as too long, and the conversation stayed unnamed (only logged).
    window, room = 512, 256

    def answer(body: dict[str, Any]) -> str:
        asked = body["messages"][-1]["content"]
        return "Tides and winds" if asked.startswith(TITLE_PROMPT) else " ".join(["a"] * 400)

    server = ByteTokens(answer=answer, max_model_len=window)
    question = " ".join(["b"] * 100)  # 199 bytes: within the 256 the context may take
    async with running_stack(
        tmp_path,
        model_server=server,
        context_tokens=window,
        max_answer_tokens=room,
        conversation_titles=True,
    ) as stack:
        stack.telegram.send_text(USER, question)
        await stack.stored_turns(USER, 2)
        await stack.veil.chat.wait_idle(10)
        conversations = await stack.veil.store.conversations(USER)
    assert len(server.requests) == 2
    assert [c.title for c in conversations] == ["Tides and winds"]
    (_, answered), (title_count, title_asked) = fitted(server)
    assert answered > 200  # an answer long enough, with the question, to fill the window
    assert title_asked <= TITLE_TOKENS
    assert title_count + title_asked <= window


def test_a_title_request_shows_less_of_the_exchange_where_the_window_is_small() -> None:
    most = 400
    messages = title_messages("q" * 2000, "a" * 2000, most)
    assert messages is not None
    assert prompt_tokens(messages) <= most
    assert "q" * 50 in messages[0]["content"]
    assert "a" * 50 in messages[0]["content"]
    assert title_messages("q" * 2000, "a" * 2000, len(TITLE_PROMPT)) is None


@pytest.mark.parametrize(
    ("message", "stated"),
    [
        (
            (
                "This model's maximum context length is 4096 tokens. However, your request has 5000"
                " input tokens. Please reduce the length of the input messages."
            ),
            (4096, 5000),
        ),
        (
            (
                "'max_tokens' or 'max_completion_tokens' is too large: 1024. This model's maximum"
                " context length is 4096 tokens and your request has 3500 input tokens"
                " (1024 > 4096 - 3500)."
            ),
            (4096, 3500),
        ),
        (
            (
                "This model's maximum context length is 4096 tokens. However, you requested 5000"
                " tokens (3976 in the messages, 1024 in the completion). Please reduce the length"
                " of the messages or completion."
            ),
            (4096, 3976),
        ),
        (  # a lower bound (later vLLM stops counting past the window): no count to fit by
            (
                "This model's maximum context length is 4096 tokens. However, you requested 1024"
                " output tokens and your prompt contains at least 3073 input tokens, for a total"
                " of at least 4097 tokens."
            ),
            None,
        ),
        ("This model's maximum context length is 4096 tokens.", None),
        ("the request exceeds the available context size", None),
        (  # llama.cpp's server (the local model of the run command): the prompt alone
            (
                "request (4476 tokens) exceeds the available context size (4096 tokens), try"
                " increasing it"
            ),
            (4096, 4476),
        ),
    ],
)
def test_a_refusal_as_too_long_states_the_window_and_the_prompts_tokens(
    message: str, stated: tuple[int, int] | None
) -> None:
    assert context_refusal(message) == stated


async def test_a_model_server_grown_past_its_bundles_window_reads_no_more_than_is_held(
    tmp_path: Path,
) -> None:
    # The model server restarted with a larger window than the gateway's bundle states (it
    # learns the new one at its next key rotation). A paste far over the stated window was
    # held as that window, the model server read all of it, and its usage was charged in full
    # above the hold: the overdraft docs/money.md bounds by "what the ceilings missed".
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    paste = " ".join(f"w{n % 10}" for n in range(2000))
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        await stack.veil.chat.inference.refresh()
        assert stack.veil.chat.inference.widest_window("veil-test") == WINDOW  # held by this
        server.max_model_len = 4 * WINDOW
        stack.telegram.send_text(USER, paste)
        (told,) = await stack.final_messages(USER)
        await stack.veil.chat.wait_idle(10)
        holds = await stack.veil.store.read(
            lambda db: db.execute(
                "SELECT prompt_tokens, prompt_used FROM holds WHERE user_id = ?", [USER]
            ).fetchall()
        )
    assert all(used <= held for held, used in holds), holds
    assert server.prompt_counts == []  # the gateway's own count refused it: no model read it
    assert told["text"] == stack.veil.catalogs.for_language("en")("error_question_long")
