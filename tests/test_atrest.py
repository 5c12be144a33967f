"""The master key file, data key wrapping, and sealed history bodies."""

from __future__ import annotations

import base64
import dataclasses
import os
from typing import TYPE_CHECKING, Any

import pytest

from models import DataKeyCorrupted, HistoryCorrupted, MasterKey, StorageError
from models.atrest import new_data_key, open_body, seal_body
from models.records import TurnPlace

if TYPE_CHECKING:
    from pathlib import Path

PLACE = TurnPlace(user_id=7, conversation_id=3, seq=2, role="user")


def _open(data_key: bytes, blob: bytes, **changes: Any) -> str:  # noqa: ANN401 -- a field each
    return open_body(data_key, dataclasses.replace(PLACE, **changes), blob)


def _seal(data_key: bytes, text: str) -> bytes:
    return seal_body(data_key, PLACE, text)


def test_key_file_is_created_owner_only_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "master.key"
    created = MasterKey.load_or_create(path)

    assert path.stat().st_mode & 0o777 == 0o600
    assert len(base64.b64decode(path.read_bytes().strip(), validate=True)) == 32
    data_key = new_data_key()
    assert MasterKey.load_or_create(path).unwrap(5, created.wrap(5, data_key)) == data_key
    assert base64.b64encode(data_key).decode() not in repr(created)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused_and_left_alone(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    MasterKey.load_or_create(path)
    before = path.read_bytes()
    path.chmod(mode)

    with pytest.raises(StorageError, match="chmod 600"):
        MasterKey.load_or_create(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [base64.b64encode(bytes(16)), base64.b64encode(bytes(33)), b"not base64 at all!", b""],
    ids=["16-bytes", "33-bytes", "not-base64", "empty"],
)
def test_key_file_with_wrong_content_is_refused_not_replaced(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "master.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, content)
    os.close(fd)

    with pytest.raises(StorageError, match=r"master key file .* (base64|32 bytes)"):
        MasterKey.load_or_create(path)
    assert path.read_bytes() == content


def test_a_wrong_master_key_cannot_unwrap() -> None:
    data_key = new_data_key()
    blob = MasterKey.generate().wrap(1, data_key)

    with pytest.raises(DataKeyCorrupted):
        MasterKey.generate().unwrap(1, blob)


def test_a_wrapped_key_moved_to_another_user_fails() -> None:
    master = MasterKey.generate()
    data_key = new_data_key()
    blob = master.wrap(1, data_key)

    assert master.unwrap(1, blob) == data_key
    with pytest.raises(DataKeyCorrupted):
        master.unwrap(2, blob)
    with pytest.raises(DataKeyCorrupted):
        master.unwrap(1, blob[:-1])


@pytest.mark.parametrize(
    "text",
    ["", "Привет, мир! 你好 🌍 مرحبا", "a" * 10_000, "lone \ud800 surrogate"],
    ids=["empty", "unicode", "long", "lone-surrogate"],
)
def test_a_body_opens_where_it_was_sealed(text: str) -> None:
    data_key = new_data_key()
    blob = _seal(data_key, text)

    assert _open(data_key, blob) == text


@pytest.mark.parametrize(
    "changes",
    [{"user_id": 8}, {"conversation_id": 4}, {"seq": 1}, {"seq": 3}, {"role": "assistant"}],
    ids=["other-user", "other-conversation", "earlier-seq", "later-seq", "other-role"],
)
def test_a_body_moved_anywhere_else_fails(changes: dict[str, int | str]) -> None:
    data_key = new_data_key()
    blob = _seal(data_key, "the user's question")

    with pytest.raises(HistoryCorrupted) as caught:
        _open(data_key, blob, **changes)
    assert "question" not in str(caught.value)


def test_a_tampered_truncated_or_foreign_key_body_fails() -> None:
    data_key = new_data_key()
    blob = _seal(data_key, "the user's question")
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])

    for bad_key, bad_blob in [(data_key, flipped), (data_key, blob[:20]), (new_data_key(), blob)]:
        with pytest.raises(HistoryCorrupted):
            _open(bad_key, bad_blob)


def test_sealing_hides_the_text_and_never_repeats() -> None:
    data_key = new_data_key()
    text = "my secret diagnosis"
    first, second = _seal(data_key, text), _seal(data_key, text)

    assert first != second
    assert text.encode() not in first
    assert text.encode() not in second


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="role"):
        seal_body(new_data_key(), TurnPlace(1, 1, 1, "system"), "x")  # type: ignore[arg-type]
