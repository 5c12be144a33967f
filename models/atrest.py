"""Encryption at rest: the master key, per-user data keys and sealed history bodies.

One master key lives in a file only its owner can read (base64 of 32 random bytes, mode 0600).
It wraps each user's random 32-byte data key, which is stored only wrapped; the data key seals
the text of each turn. Forgetting a user deletes the wrapped data key, so every copy of their
sealed turns, backups included, stops being readable.

Every ciphertext is ChaCha20-Poly1305 with a random 12-byte nonce in front. The associated data
names where the bytes belong: a wrapped key its user; a turn its user, conversation, position and
role; a conversation's title its user and conversation. A row copied anywhere else fails to open
instead of showing someone else's words.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from common.durable import abandoned, drafts, sync_folder, write_new
from models.errors import DataKeyCorrupted, HistoryCorrupted, MasterKeyFileError, StorageError
from models.records import as_role

if TYPE_CHECKING:
    from pathlib import Path

    from models.records import TurnPlace

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_FILE_MODE = 0o600

_DATAKEY_AAD = b"veil/datakey/v1|"
_HISTORY_AAD = b"veil/history/v1|"
_TITLE_AAD = b"veil/title/v1|"
# Python strings may hold lone surrogates; storing them must not fail, and they must come back.
_TEXT_ERRORS = "surrogatepass"
# A new key's draft beside its file: ``.<name>.<pid>.<8 hex>``, locked (``flock``) by its
# writer, written whole, linked into place, then removed (``MasterKey._create``).
# Drafts a new key may take: one another start settled away before its writer locked it goes.


def new_data_key() -> bytes:
    """Return a fresh random 32-byte data key for one user."""
    return os.urandom(KEY_SIZE)


class MasterKey:
    """The key that wraps every user's data key; its bytes never appear in ``repr``."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise StorageError(f"a master key must be {KEY_SIZE} bytes")
        self._aead = ChaCha20Poly1305(key)

    def __repr__(self) -> str:
        return "MasterKey(<hidden>)"

    @classmethod
    def generate(cls) -> MasterKey:
        """Return a new random master key, kept only in memory."""
        return cls(os.urandom(KEY_SIZE))

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        """Load the master key from ``path``, or create the file (mode 0600) if it is absent.

        A file that group or others may access, that is not a regular file, or that does not
        hold base64 of exactly 32 bytes is refused with ``MasterKeyFileError``: guessing would
        either leak the key or silently start a new one that cannot open the old history. So is
        a file that cannot be made (its folder cannot be, the disk is full).
        """
        try:
            return cls._load(path)
        except FileNotFoundError:
            pass
        try:
            return cls._create(path)
        except OSError as exc:
            raise MasterKeyFileError(
                f"master key file {path} cannot be made: {exc.strerror}"
            ) from exc

    @classmethod
    def for_reading(cls, path: Path) -> MasterKey:
        """The master key at ``path``; where none is there yet, one kept in memory only.

        For the commands that check the data (``audit``, ``reconcile``): they unwrap no user's
        data key, and made the key file as a side effect on a database with no users yet, a key
        nobody asked for that the next start took for the data's. A database that holds users'
        keys without its key file is refused before this (``bot.__main__.lost_master_key``);
        a file that is there is checked as ``load_or_create`` checks it.
        """
        try:
            return cls._load(path)
        except FileNotFoundError:
            return cls.generate()

    @classmethod
    def _create(cls, path: Path) -> MasterKey:
        """Write a new key to ``path`` (its folder made if need be), or load one made meanwhile."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = os.urandom(KEY_SIZE)
        # A process starting at the same moment finds no key or the whole key, never an empty
        # file, and the key's name is on the disk before anything it seals (``write_new``).
        try:
            write_new(path, base64.b64encode(key) + b"\n", KEY_FILE_MODE)
        except FileExistsError:
            return cls._load(path)  # another process made it between our two looks
        return cls(key)

    @classmethod
    def _load(cls, path: Path) -> MasterKey:
        try:
            encoded = _read_key_file(path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise MasterKeyFileError(f"cannot read master key file {path}: {exc.strerror}") from exc
        return cls(_decoded(path, encoded))

    def wrap(self, user_id: int, data_key: bytes) -> bytes:
        """Encrypt ``data_key`` for storage in ``user_id``'s row."""
        if len(data_key) != KEY_SIZE:
            raise ValueError(f"a data key must be {KEY_SIZE} bytes")
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, data_key, _datakey_aad(user_id))

    def unwrap(self, user_id: int, blob: bytes) -> bytes:
        """Return the data key wrapped for ``user_id``, or raise ``DataKeyCorrupted``."""
        if len(blob) != NONCE_SIZE + KEY_SIZE + TAG_SIZE:
            raise DataKeyCorrupted("a wrapped data key has the wrong length")
        try:
            return self._aead.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], _datakey_aad(user_id))
        except InvalidTag as exc:
            raise DataKeyCorrupted(
                "a wrapped data key does not open: wrong master key, or the row was altered"
            ) from exc


def settle_drafts(path: Path) -> list[str]:
    """Settle the drafts a start killed while making the key left beside ``path``: lines to tell.

    A SIGKILL between writing the draft and removing it left it in the data folder: a second,
    hidden copy of a key (backed up, kept after the key is destroyed), or the only copy of one.
    With the key file there, the draft goes (it is the key's second name, or a key that never
    took its place and sealed nothing). Without it, a draft that holds a whole key takes its
    place (the key it names, or one that sealed nothing), so no key is lost. A draft cut short
    goes. A draft its writer still holds (its lock: a start beside, in this container or
    another) is its own to settle.
    """
    lines = []
    for draft, pid in drafts(path):
        with abandoned(draft, pid) as gone:
            if not gone:
                continue
            try:
                if not path.exists() and _whole(draft):
                    os.link(draft, path)
                    sync_folder(path.parent)
                    lines.append(
                        f"veil: the master key draft {draft} took the missing {path}'s place"
                    )
                draft.unlink()
            except FileExistsError:  # another start made the key meanwhile: the draft goes
                draft.unlink(missing_ok=True)
            except OSError as exc:
                lines.append(f"veil: cannot remove the master key draft {draft}: {exc.strerror}")
    return lines


def _whole(draft: Path) -> bool:
    """Whether ``draft`` is a file that holds a whole key (its mode is the key file's to tell)."""
    try:
        if not draft.is_file() or draft.is_symlink():
            return False
        _decoded(draft, draft.read_bytes())
    except (OSError, MasterKeyFileError):
        return False
    return True


def _decoded(path: Path, encoded: bytes) -> bytes:
    """The key a key file's bytes hold: base64 of exactly ``KEY_SIZE`` bytes."""
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as exc:
        raise MasterKeyFileError(f"master key file {path} does not hold base64") from exc
    if len(key) != KEY_SIZE:
        raise MasterKeyFileError(f"master key file {path} must hold base64 of {KEY_SIZE} bytes")
    return key


def seal_body(data_key: bytes, place: TurnPlace, text: str) -> bytes:
    """Encrypt one turn's text, bound to its user, conversation, position and role."""
    aad = _history_aad(place)
    nonce = os.urandom(NONCE_SIZE)
    plaintext = text.encode("utf-8", _TEXT_ERRORS)
    return nonce + ChaCha20Poly1305(data_key).encrypt(nonce, plaintext, aad)


def open_body(data_key: bytes, place: TurnPlace, blob: bytes) -> str:
    """Decrypt one turn's text; raise ``HistoryCorrupted`` if it does not belong where it sits."""
    aad = _history_aad(place)
    where = f"turn {place.seq} of conversation {place.conversation_id}"
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise HistoryCorrupted(f"{where} is truncated")
    try:
        plaintext = ChaCha20Poly1305(data_key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
    except InvalidTag as exc:
        raise HistoryCorrupted(f"{where} does not open where it is stored") from exc
    return plaintext.decode("utf-8", _TEXT_ERRORS)


def seal_title(data_key: bytes, user_id: int, conversation_id: int, title: str) -> bytes:
    """Encrypt a conversation's title, bound to its user and conversation."""
    nonce = os.urandom(NONCE_SIZE)
    plaintext = title.encode("utf-8", _TEXT_ERRORS)
    aad = _title_aad(user_id, conversation_id)
    return nonce + ChaCha20Poly1305(data_key).encrypt(nonce, plaintext, aad)


def open_title(data_key: bytes, user_id: int, conversation_id: int, blob: bytes) -> str:
    """Decrypt a conversation's title; raise ``HistoryCorrupted`` if it belongs elsewhere."""
    where = f"the title of conversation {conversation_id}"
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise HistoryCorrupted(f"{where} is truncated")
    aad = _title_aad(user_id, conversation_id)
    try:
        plaintext = ChaCha20Poly1305(data_key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
    except InvalidTag as exc:
        raise HistoryCorrupted(f"{where} does not open where it is stored") from exc
    return plaintext.decode("utf-8", _TEXT_ERRORS)


def _title_aad(user_id: int, conversation_id: int) -> bytes:
    return _TITLE_AAD + b"%d|%d" % (user_id, conversation_id)


def _read_key_file(path: Path) -> bytes:
    """Return the file's bytes after checking, on the open file, that only its owner can read it."""
    with path.open("rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise MasterKeyFileError(f"master key file {path} is not a regular file")
        if mode & 0o077:
            raise MasterKeyFileError(
                f"master key file {path} has mode {stat.S_IMODE(mode):04o}, so group or others "
                "may read it; run chmod 600 on it"
            )
        return file.read()


def _datakey_aad(user_id: int) -> bytes:
    return _DATAKEY_AAD + b"%d" % user_id


def _history_aad(place: TurnPlace) -> bytes:
    # Decimal integers and a role from a fixed set contain no "|", so the encoding is unambiguous.
    return _HISTORY_AAD + b"%d|%d|%d|%s" % (
        place.user_id,
        place.conversation_id,
        place.seq,
        as_role(place.role).encode("ascii"),
    )
