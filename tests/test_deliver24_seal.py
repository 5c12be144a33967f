"""What a private answer sent again replies to, and the note under it, are sealed with its text.

``reply_to``, ``ending`` and ``retry`` were plain columns of an ``undelivered`` row, bound to
nothing: whoever can write the file could change which message a resend replies to (or what
its Retry asks). The row's ``Finish`` is now sealed with its text (``models.outbox``): a column
that disagrees is logged (no text) and set aside, and the answer goes out as it was sealed,
nothing lost. A row a previous release wrote (no sealed ``Finish``) still goes out by its columns.
"""

from __future__ import annotations

import json
import os
import sqlite3
from functools import partial
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from structlog.testing import capture_logs

from bot.app import deliver_again
from models.atrest import new_data_key
from models.outbox import Finish, Outbound, open_answer, seal_answer
from tests.botstack import QUICK_RETRY, running_stack
from tests.harness import rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 9251
ANSWER = " ".join(f"curlew{i}" for i in range(30))


async def test_a_row_whose_reply_to_was_changed_in_the_file_replies_to_its_own_question(
    tmp_path: Path,
) -> None:
    db = tmp_path / "veil.db"
    # No upkeep pass meanwhile (one would hold the row opened before it was changed): the
    # test runs the pass that sends it, once Telegram is back.
    async with running_stack(
        tmp_path, answer=ANSWER, sweep_every=3600, final_retry_wait=QUICK_RETRY
    ) as stack:
        telegram = stack.telegram
        telegram.send_text(USER, "an earlier message")  # answered: a message of the user's
        await stack.final_messages(USER)
        assert await stack.veil.chat.wait_idle(30)
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
        telegram.send_text(USER, "a question")
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM undelivered")))
        assert await stack.veil.chat.wait_idle(90)
        messages = telegram.state.chat_messages(USER)
        (asked,) = [m["message_id"] for m in messages if m.get("text") == "a question"]
        (other,) = [m["message_id"] for m in messages if m.get("text") == "an earlier message"]
        assert rows(db, "SELECT reply_to FROM undelivered") == [(asked,)]
        with sqlite3.connect(db) as changing:  # someone who can write the file
            changing.execute("UPDATE undelivered SET reply_to = ?", [other])
        with capture_logs() as logs:
            telegram.clear_failures()
            sent_again = await stack.veil.chat.deliveries.deliver_undelivered(
                partial(deliver_again, stack.veil)
            )
        assert sent_again == 1
        assert rows(db, "SELECT 1 FROM undelivered") == []
        *_, sent = telegram.sent_messages(USER)
    refused = [e for e in logs if e["event"] == "outbox.finish_refused"]
    assert [(e["altered"], e["user_id"]) for e in refused] == [(["reply_to"], USER)]
    assert sent["text"] == ANSWER  # nothing lost
    assert sent["reply_to_message"]["message_id"] == asked  # not the message put in the file
    assert "curlew" not in str(logs)


def test_a_row_the_previous_release_sealed_opens_with_its_columns() -> None:
    # Its plaintext has no "finish" (the previous release sealed text and header only): its
    # columns are all it has, and a resend goes by them, as it did.
    key, place = new_data_key(), Outbound.private(USER)
    columns = Finish(reply_to=41, ending="cut", retry=None)
    aad = b"veil/undelivered/v2|%d|%s|%s" % (
        USER,
        b"ab12",
        json.dumps(["private", USER, None, None, None]).encode(),
    )
    nonce = os.urandom(12)
    plaintext = json.dumps({"text": ANSWER, "header": ""}).encode()
    blob = nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)
    assert open_answer(key, USER, "ab12", place, blob, columns) == (ANSWER, "", columns)
    # A row sealed now keeps its own, whatever its columns say.
    sealed = Finish(reply_to=7, ending="broke_off", retry="k1", file_read=40)
    blob = seal_answer(key, USER, "ab12", place, ANSWER, sealed)
    with capture_logs() as logs:
        assert open_answer(key, USER, "ab12", place, blob, columns) == (ANSWER, "", sealed)
    (refused,) = logs
    assert refused["altered"] == ["reply_to", "ending", "retry"]
