"""review29f: an operator's settings that did nothing and said nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from structlog.testing import capture_logs

from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

USER = 4242


async def test_a_default_model_and_a_price_no_gateway_serves_are_told(tmp_path: Path) -> None:
    """``VEIL_DEFAULT_MODEL`` and a ``VEIL_PRICES`` model misspelt: warned once, by name.

    Before, users got the first served model and the misspelt model's price was never used
    (the served one billed at ``*``), and nothing in the log said so.
    """
    with capture_logs() as logs:
        async with running_stack(
            tmp_path,
            models=("veil-test",),
            default_model="veil-tset",
            prices="veil-tset=100/300,veil-test=1/2,*=20/60",
        ) as stack:
            for turn in (1, 2):
                stack.telegram.send_text(USER, f"question {turn}")
                await stack.final_messages(USER, count=turn)

    told = [entry for entry in logs if entry["event"].endswith("_unserved")]
    assert told == [
        {
            "event": "chat.default_model_unserved",
            "log_level": "warning",
            "model": "veil-tset",
            "served": ["veil-test"],
        },
        {
            "event": "chat.priced_model_unserved",
            "log_level": "warning",
            "models": ["veil-tset"],
            "served": ["veil-test"],
        },
    ]


async def test_settings_that_name_served_models_are_not_told(tmp_path: Path) -> None:
    """A default model and prices the gateways serve: no warning."""
    with capture_logs() as logs:
        async with running_stack(
            tmp_path,
            models=("veil-test",),
            default_model="veil-test",
            prices="veil-test=1/2,*=20/60",
        ) as stack:
            stack.telegram.send_text(USER, "question")
            await stack.final_messages(USER)

    assert [entry for entry in logs if entry["event"].endswith("_unserved")] == []
