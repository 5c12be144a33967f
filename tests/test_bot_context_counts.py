"""The history is fitted to the window by the model's own counts, from answers' signed receipts.

Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``. The fake enforces
its window as vLLM does (a 400 when the prompt's tokens and the answer asked for exceed
``max_model_len``) and counts a text the same whether it wrote it or reads it back, as a real
model server does. An answer whose verified receipt carries the model server's usage is stored
with that count (and a margin); a question, a stopped answer and an answer without usage keep
their bytes as the ceiling, and so do turns stored before the counts were.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

from models import TokenCount
from services.tokens import answer_tokens, prompt_tokens, text_tokens
from tests.botstack import Stack, running_stack
from tests.fakes.vllm import FakeVLLM, split_tokens

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from models import Turn

USER = 9601
MODEL = "veil-test"
WINDOW, ROOM = 1024, 256  # the context may take 768 tokens of the window
ANSWER = ("The sea is wide and the wind is strong today. " * 12).strip()  # 551 bytes, 120 tokens
QUESTIONS = [f"Question {n}: tell me more about the sea." for n in range(4)]


def counted(text: str, model: str = MODEL) -> TokenCount:
    """The count the bot keeps for an answer the fake wrote: its tokens and the margin."""
    return TokenCount(answer_tokens(text, len(split_tokens(text))), model)


def asked(server: FakeVLLM, number: int, question: str) -> TokenCount | None:
    """The count the bot keeps for a question: its request's prompt tokens, where below its bytes.

    ``number``: the request it went out in (0 the first the model server was sent).
    """
    count = server.prompt_counts[number]
    return TokenCount(count, MODEL) if count < text_tokens(question) else None


def settings(**more: Any) -> dict[str, Any]:  # noqa: ANN401
    return {"context_tokens": WINDOW, "max_answer_tokens": ROOM, **more}


async def converse(stack: Stack, questions: Sequence[str], asked: int = 0) -> None:
    """Ask each question in the user's conversation, waiting for its exchange to be stored."""
    for number, question in enumerate(questions, asked):
        stack.telegram.send_text(USER, question)
        await stack.stored_turns(USER, 2 * number + 2)


async def stored(stack: Stack) -> list[Turn]:
    conversation = await stack.veil.store.active_conversation(USER)
    return await stack.veil.store.history(USER, conversation)


async def stored_after(stack: Stack, count: int) -> list[Turn]:
    """The user's active conversation once it holds ``count`` turns."""
    await stack.stored_turns(USER, count)
    return await stored(stack)


def within_window(server: FakeVLLM) -> bool:
    """Every request's prompt, as the model server counted it, and its answer cap fit."""
    assert len(server.prompt_counts) == len(server.requests)
    return all(
        count + request["max_completion_tokens"] <= server.max_model_len
        for count, request in zip(server.prompt_counts, server.requests, strict=True)
    )


def events(logs: list[Any]) -> list[str]:
    return [entry["event"] for entry in logs]


async def test_answers_counted_by_their_receipts_keep_the_whole_conversation(
    tmp_path: Path,
) -> None:
    # Counted by its bytes, each 551-byte answer took 559 of the 768 tokens the context may
    # have, where the model reads it in 120: from the third question on the first exchanges
    # were left out, though the window held the whole conversation.
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        with capture_logs() as logs:
            await converse(stack, QUESTIONS)
        turns = await stored(stack)
        holds = await stack.veil.store.read(
            lambda db: db.execute(
                "SELECT prompt_tokens FROM holds WHERE user_id = ? ORDER BY created_at", [USER]
            ).fetchall()
        )
    last = server.requests[-1]["messages"]
    assert [message["content"] for message in last] == [
        *(text for q in QUESTIONS[:-1] for text in (q, ANSWER)),
        QUESTIONS[-1],
    ]
    assert [turn.text for turn in turns] == [text for q in QUESTIONS for text in (q, ANSWER)]
    assert [turn.tokens for turn in turns] == [
        count
        for number, question in enumerate(QUESTIONS)
        for count in (asked(server, number, question), counted(ANSWER))
    ]
    # The first question was the whole of its prompt: counted by it; the others by their bytes.
    assert turns[0].tokens is not None
    assert [turn.tokens for turn in turns[2::2]] == [None] * (len(QUESTIONS) - 1)
    assert counted(ANSWER).tokens == 120 + 15 < text_tokens(ANSWER) / 4
    assert prompt_tokens(last) > WINDOW - ROOM  # by bytes alone it would not have fitted
    # Each request fitted the window as the model server counts, the first time.
    assert len(server.requests) == len(QUESTIONS)
    assert within_window(server)
    assert "chat.context_trimmed" not in events(logs)
    # The hold is sized by the same counts: never below the model's, below the bytes'.
    assert server.prompt_counts[-1] <= holds[-1][0] < prompt_tokens(last)


async def test_a_long_conversation_is_trimmed_by_the_counts_and_never_sent_over_the_window(
    tmp_path: Path,
) -> None:
    # Every answer runs to its cap (cut at its length limit): the most an answer can count.
    server = FakeVLLM(answer=" ".join(["waves"] * 600), max_model_len=WINDOW)
    questions = [f"Question {n}: and then?" for n in range(8)]
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        with capture_logs() as logs:
            await converse(stack, questions)
        turns = await stored(stack)
    answers = turns[1::2]
    assert all(len(split_tokens(answer.text)) == ROOM for answer in answers)
    assert [answer.tokens for answer in answers] == [counted(answer.text) for answer in answers]
    assert len(server.requests) == len(questions)  # no 400, no retry
    assert within_window(server)
    assert "chat.context_trimmed" not in events(logs)
    # The oldest turns were left out, the newest two exchanges kept (by bytes: none of them).
    last = server.requests[-1]["messages"]
    assert [message["content"] for message in last] == [
        *(turn.text for turn in turns[-6:-2]),
        questions[-1],
    ]
    assert text_tokens(answers[-1].text) > WINDOW - ROOM


async def test_a_text_file_counted_by_its_receipt_stays_for_the_next_question(
    tmp_path: Path,
) -> None:
    # A file of 2,000 bytes the model reads in about 350 tokens: counted by its bytes it never
    # fitted the context again, and its answer went with it (a conversation must not open with
    # an answer), so the next question reached the model alone: "and point two?" of nothing.
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    body = ("Point one is the coast, and point two is the tide. " * 40).encode()
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        stack.telegram.send_document(USER, body, file_name="notes.txt", caption="Summarise")
        await stack.stored_turns(USER, 2)
        stack.telegram.send_text(USER, "And point two?")
        turns = await stored_after(stack, 4)
    question, answer = turns[0], turns[1]
    assert text_tokens(question.text) > WINDOW  # by its bytes, not even the window holds it
    assert [m["content"] for m in server.requests[1]["messages"]] == [
        question.text,
        answer.text,
        "And point two?",
    ]
    assert question.tokens == TokenCount(server.prompt_counts[0], MODEL)  # its request's
    assert len(server.requests) == 2
    assert within_window(server)


async def test_a_stopped_answer_keeps_its_ceiling_and_the_next_question_fits(
    tmp_path: Path,
) -> None:
    server = FakeVLLM(answer=ANSWER, token_delay=0.05, max_model_len=WINDOW)
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        with capture_logs() as logs:
            stack.telegram.send_text(USER, QUESTIONS[0])
            draft = await stack.telegram.wait_for("sendMessageDraft")
            stack.telegram.stop_generation(USER, int(draft.params["draft_id"]))
            await stack.stored_turns(USER, 2)
            server.token_delay = 0.0
            await converse(stack, QUESTIONS[1:3], 1)
        turns = await stored(stack)
    stopped = turns[1].text
    assert 0 < len(stopped) < len(ANSWER)
    # The model server's usage never came for the stopped stream (the gateway counted the
    # deltas itself: an estimated receipt), so the stopped answer is counted by its bytes.
    relayed = [entry for entry in logs if entry["event"] == "gateway.relayed"]
    assert [entry["usage_reported"] for entry in relayed] == [False, True, True]
    assert [turn.tokens for turn in turns] == [
        None,
        None,
        asked(server, 1, QUESTIONS[1]),
        counted(ANSWER),
        None,
        counted(ANSWER),
    ]
    assert [m["content"] for m in server.requests[-1]["messages"]][:2] == [QUESTIONS[0], stopped]
    assert within_window(server)


async def test_an_answer_without_usage_keeps_its_ceiling(tmp_path: Path) -> None:
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    server.send_usage = False  # as llama-cpp-python's server: the gateway counts for itself
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        await converse(stack, QUESTIONS[:1])
        server.send_usage = True
        await converse(stack, QUESTIONS[1:3], 1)
        turns = await stored(stack)
    assert [turn.tokens for turn in turns] == [
        None,
        None,
        None,
        counted(ANSWER),
        None,
        counted(ANSWER),
    ]
    assert len(server.requests) == 3
    assert within_window(server)


def _as_before_counts(database: Path) -> None:
    """Make ``database`` what the code before turn counts left: no column, no record of it.

    The migrations after it are undone too (their table, their column, their records), so the
    database is the one the code of m0010 left.
    """
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute("ALTER TABLE turns DROP COLUMN tokens")
        db.execute("ALTER TABLE turns DROP COLUMN tokens_model")
        db.execute("DROP TABLE early_refunds")  # m0012
        db.execute("ALTER TABLE ton_payments DROP COLUMN named")  # m0013
        db.execute("ALTER TABLE ton_payments DROP COLUMN notice_claimed_until")  # m0014
        db.execute("ALTER TABLE ton_skipped DROP COLUMN amount")  # m0015
        db.execute("ALTER TABLE ton_skipped DROP COLUMN sender")
        db.execute("DROP INDEX orders_user_id")  # m0016
        db.execute("DROP TABLE undelivered")  # m0017 (its index with it), m0018 to m0020
        db.execute("DROP TRIGGER conversations_id_mark")  # m0021
        db.execute("DROP TABLE id_marks")
        db.execute("ALTER TABLE orders DROP COLUMN last_approved_at")
        db.execute("ALTER TABLE ton_cursors DROP COLUMN chain_since")  # m0022
        db.execute("DROP TABLE plan_cancels")  # m0023
        db.execute("DELETE FROM _sqlite_migrations WHERE name > 'm0010_ton_late_transfers'")
        db.execute("PRAGMA user_version = 10")


async def test_an_old_database_is_migrated_and_its_turns_count_by_their_bytes(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **settings()) as stack:
        await converse(stack, QUESTIONS[:2])
        database = stack.veil.store.path
    _as_before_counts(database)
    with contextlib.closing(sqlite3.connect(database)) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(turns)")]
    assert "tokens" not in columns
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        await converse(stack, QUESTIONS[2:3], 2)
        turns = await stored(stack)
    assert [turn.text for turn in turns] == [text for q in QUESTIONS[:3] for text in (q, ANSWER)]
    assert [turn.tokens for turn in turns] == [None] * 5 + [counted(ANSWER)]
    # The old answers count by their bytes: one old exchange fits beside the question.
    (request,) = server.requests
    assert [m["content"] for m in request["messages"]] == [QUESTIONS[1], ANSWER, QUESTIONS[2]]
    assert within_window(server)


class TwoTokenizers(FakeVLLM):
    """Two models whose tokenizers cut the same text differently, as two real models' may.

    ``veil-test`` takes a token a word (the fake's own), ``veil-bytes`` a token a UTF-8 byte
    (the worst byte-level tokenizer): Llama 2's 32,000-token vocabulary, say, takes more
    tokens for the same text than Llama 3's 128,000.
    """

    def __init__(self) -> None:
        super().__init__(answer=ANSWER, models=(MODEL, "veil-bytes"), max_model_len=WINDOW)
        self.reading = MODEL

    def _model(self, body: dict[str, Any]) -> str:
        self.reading = super()._model(body)
        return self.reading

    def text_tokens(self, text: str) -> int:
        """The tokens of ``text`` for the model of the request read last."""
        if self.reading == "veil-bytes":
            return len(text.encode("utf-8"))
        return super().text_tokens(text)


async def test_counts_are_the_models_that_made_them_and_another_model_reads_bytes(
    tmp_path: Path,
) -> None:
    server = TwoTokenizers()
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        with capture_logs() as logs:
            await converse(stack, QUESTIONS[:3])
            assert await stack.veil.chat.set_model(USER, None, "veil-bytes")
            await converse(stack, QUESTIONS[3:], 3)
        turns = await stored(stack)
    other = turns[-1].text  # cut at its cap: the other model counts its bytes as tokens
    assert [turn.tokens for turn in turns[1::2]] == [counted(ANSWER)] * 3 + [
        TokenCount(text_tokens(other), "veil-bytes")
    ]
    # The other model's request counted the earlier answers by their bytes: it fitted the
    # first time (with the first model's counts it would have been a 400 and a retry).
    assert [request["model"] for request in server.requests] == [MODEL] * 3 + ["veil-bytes"]
    assert within_window(server)
    assert "chat.context_trimmed" not in events(logs)
    last = server.requests[-1]["messages"]
    assert [m["content"] for m in last] == [QUESTIONS[2], ANSWER, QUESTIONS[3]]


class ReadsMore(FakeVLLM):
    """A model server that reads a text back in far more tokens than it wrote it in.

    Written, a token a word (the fake's own); read in a prompt, a token a byte. No real
    tokenizer is this far off: it stands for counts from receipts that are too low, whatever
    the cause, which the bot must survive.
    """

    def prompt_tokens(self, messages: Sequence[dict[str, Any]]) -> int:
        """Every content byte a token, and the template's tokens."""
        return sum(len(str(m["content"]).encode("utf-8")) + 4 for m in messages)


async def test_counts_too_low_for_the_model_are_retried_by_bytes(tmp_path: Path) -> None:
    # Retried at half the budget by the same low counts, the exchange kept was still too
    # long: the user was told the model failed.
    window, room = 768, 192
    server = ReadsMore(answer=ANSWER, max_model_len=window)
    async with running_stack(
        tmp_path, model_server=server, context_tokens=window, max_answer_tokens=room
    ) as stack:
        with capture_logs() as logs:
            await converse(stack, QUESTIONS[:2])
        turns = await stored(stack)
    assert [turn.text for turn in turns] == [text for q in QUESTIONS[:2] for text in (q, ANSWER)]
    # The second question went out with the first exchange, which the model refused (a 400),
    # then again with every turn counted by its bytes: without it, and it fitted.
    assert "chat.context_trimmed" in events(logs)
    assert [len(request["messages"]) for request in server.requests] == [1, 3, 1]
    assert server.prompt_counts[1] + server.requests[1]["max_completion_tokens"] > window
    assert server.prompt_counts[2] + server.requests[2]["max_completion_tokens"] <= window
