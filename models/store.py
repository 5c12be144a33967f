"""The bot's database: users, conversations and sealed history, and the seam to the money tables.

One SQLite connection on one worker thread (``models.database``): every call runs there in
submission order, so writes never race and the event loop never blocks on disk. Other tables
(the ledger, holds, orders, proofs) are reached through ``Store.read`` and ``Store.write``, which
own the transaction, with the functions of their modules. The history's own calls mostly read,
so they take SQLite's write lock only when they write: a lock held elsewhere never holds up
reading a user's history. Where they write on what they read (a new user, the next turn's
place, a conversation to start), they take the lock before that read (``atomic()`` is ``BEGIN
IMMEDIATE``: ``models.database.LockingDatabase``) or read it again under the lock: another
process (a webhook replica, ``reconcile --fix``) may have written since. The
file runs in WAL mode with ``secure_delete`` on, so rows that ``forget`` deletes are overwritten
with zeros, and the WAL is checkpointed and truncated afterwards (and at every start, for a
checkpoint a crash cut short). Turn text and conversation titles are sealed with the user's data
key before they reach SQL (see ``models.atrest``); nothing readable is stored.

A user has one active conversation, which a message in the private chat itself continues, and
any number of others: older ones (``conversations`` lists them, ``switch_conversation`` makes one
active again) and, where the bot has topics in private chats, one a topic (``thread_id``), which
only messages in that topic continue.
"""

from __future__ import annotations

import dataclasses
import secrets
import sqlite3
import time
from collections import OrderedDict
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog

from models import migrations, outbox
from models.atrest import MasterKey, new_data_key, open_body, open_title, seal_body, seal_title
from models.database import Connection, WriteFailure, log_failure
from models.errors import (
    ConversationNotFound,
    DataKeyCorrupted,
    HistoryCorrupted,
    StorageError,
    UserNotFound,
    storage_errors,
)
from models.outbox import (
    Finish,
    Outbound,
    Progress,
    Undelivered,
    open_answer,
    seal_answer,
)
from models.records import (
    Conversation,
    Role,
    TokenCount,
    Turn,
    TurnPlace,
    UserRecord,
    as_role,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from sqlite_utils import Database

T = TypeVar("T")

log = structlog.get_logger("veil.storage")

BUSY_TIMEOUT_S = 5.0
CACHE_SALT_BYTES = 24
# Unwrapped data keys kept in memory, the most recently used: a user let go of is unwrapped
# again from their row when next needed (one indexed read and one AEAD open, microseconds).
DATA_KEYS_KEPT = 1_000
MAX_ROW_ID = 2**63 - 1  # the largest id SQLite stores (a row id is a signed 64-bit integer)


@dataclass(frozen=True)
class OpenConversation:
    """What answering a question needs from the store: who asks, where, and what came before.

    ``titled``: the conversation has a title already. ``fresh``: it was started just now, for a
    topic the store did not know.
    """

    user: UserRecord
    conversation_id: int
    turns: list[Turn]
    titled: bool = False
    fresh: bool = False


class Writer(Generic[T]):
    """History to store in the transaction of another write, which calls it with its ``Database``.

    What was stored is ``stored`` (None again where the caller's transaction then failed: it was
    rolled back with it, and ``ChatService`` stores the turns alone); a failure of the history alone
    (the conversation gone, a key that does not open, a row SQLite refuses: the file at its size
    limit) is kept in ``error`` and rolled back to before it, never the write it is part of: the
    charge of an answer (or a title) stands when its history cannot be kept. SQLite's own errors are
    caught here, not only at the connection: there they would have undone the charge. One that ended
    the whole transaction (SQLite rolls it all back on a full disk or an I/O error) is kept and
    raised: the caller's writes after it would each commit on their own; it writes them again alone
    (``Credit``: the charge stands, without the history).
    """

    def __init__(self, write: Callable[[Database], T], path: Path | None = None) -> None:
        self._write = write
        self._path = path  # the database's file, for what an I/O error may say of it
        self.stored: T | None = None
        self.error: StorageError | None = None

    def __call__(self, db: Database) -> None:
        """Store it (in a savepoint of the caller's transaction)."""
        try:
            with storage_errors("database error", self._path), db.atomic():
                self.stored = self._write(db)
        except StorageError as exc:
            self.error = exc
            if not db.conn.in_transaction:
                raise
            log_failure("database", exc, self._path)

    @staticmethod
    def joined(*writers: Writer[Any] | None) -> Writer[Any] | None:
        """The writers given (None skipped) as one, each in its own savepoint; None for none.

        One alone is itself. Together, each keeps its own ``stored`` and ``error``, and a
        transaction that failed after them (``stored`` set to None by the caller) resets
        theirs too.
        """
        parts = [writer for writer in writers if writer is not None]
        if len(parts) <= 1:
            return parts[0] if parts else None
        return _Joined(parts)


class _Joined(Writer[bool]):
    """Several writers written in one transaction (``Writer.joined``)."""

    def __init__(self, parts: list[Writer[Any]]) -> None:
        self._parts = parts
        super().__init__(self._write_all)

    def _write_all(self, db: Database) -> bool:
        for part in self._parts:
            part(db)
        return True

    @property
    def stored(self) -> bool | None:
        """True once every part was tried in the transaction (each says what it stored)."""
        return self._stored

    @stored.setter
    def stored(self, value: bool | None) -> None:
        self._stored = value
        if value is None:  # rolled back with the caller's transaction: none of them stands
            for part in self._parts:
                part.stored = None


TurnsWriter = Writer[list[Turn]]


class AnswerRow(Writer[bool]):
    """An answer's row in ``undelivered`` (``Store.undelivered_writer``), written in its charge's.

    ``taken``: the messages of it Telegram took before the row is written (``Progress``), set
    as each is taken while the charge waits (the database locked): written with the row, so a
    process that stops before it can write a count after it (its store closed behind the
    charge, past a stop's deadline) does not send them again at its next start.
    """

    def __init__(self, write: Callable[[Database], bool], path: Path | None = None) -> None:
        super().__init__(write, path)
        self.taken = Progress()


class Store:
    """Async access to the bot's database; create it with ``Store.open``, end with ``close``."""

    def __init__(
        self, path: Path, connection: Connection, master_key: MasterKey, *, read_only: bool = False
    ) -> None:
        self._path = path
        self._connection = connection
        self._master_key = master_key
        self._read_only = read_only
        # Unwrapped data keys by user id, each with the wrapped key it came from, the
        # ``DATA_KEYS_KEPT`` used last (unbounded, every key since the start stayed in memory);
        # read and written only on the connection's thread.
        self._data_keys: OrderedDict[int, tuple[bytes, bytes]] = OrderedDict()
        self._outdated = False  # newer code migrated the database: said once (``write``)

    def __repr__(self) -> str:
        return f"Store({str(self._path)!r})"

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @classmethod
    async def open(
        cls,
        path: Path,
        master_key: MasterKey,
        *,
        busy_timeout: float = BUSY_TIMEOUT_S,
        read_only: bool = False,
    ) -> Store:
        """Open (or create) the database at ``path`` and bring its schema up to date.

        ``busy_timeout`` is how long a call waits for another connection's lock before it
        fails. Raises ``StorageError`` if the file is not a usable database, its migrations do
        not match this code, or ``master_key`` does not open the data keys already stored in it.

        ``read_only``: open the database that is there for reading only, also on a disk
        mounted read-only (``models.database.open_for_reading``): nothing is made, migrated or
        checkpointed, and one behind this code's migrations is refused.
        """
        if read_only:
            return await cls._open_read_only(path, master_key, busy_timeout)

        def setup(db: Database) -> None:
            _configure(db)
            migrations.apply(db)
            _check_master_key(db, path, master_key)
            # What a crash (or a reader holding a snapshot) kept a forget's checkpoint from
            # zeroing and truncating leaves the disk now, not at the next clean stop.
            _checkpoint(db)

        connection = await Connection.open(path, setup, busy_timeout=busy_timeout, name="database")
        return cls(path, connection, master_key)

    @classmethod
    async def _open_read_only(cls, path: Path, master_key: MasterKey, busy_timeout: float) -> Store:
        """``open`` with ``read_only``: the schema checked, the master key too, nothing written."""

        def setup(db: Database) -> None:
            migrations.check_current(db)
            _check_master_key(db, path, master_key)

        connection = await Connection.open(
            path, setup, busy_timeout=busy_timeout, name="database", read_only=True
        )
        return cls(path, connection, master_key, read_only=True)

    @property
    def write_failure(self) -> WriteFailure | None:
        """Why the latest write failed, while the file takes none (``models.database``)."""
        return self._connection.write_failure

    async def probe_lock(self, wait: float) -> bool:
        """Whether writes work as far as taking the lock tells (``Connection.probe_lock``)."""
        return await self._connection.probe_lock(wait)

    async def close(self) -> None:
        """Checkpoint and truncate the WAL, close the connection and stop the worker thread.

        A reader holding the checkpoint up defers it to the next start. Calls already submitted
        finish first; calls made afterwards raise ``StorageError``.
        """
        await self._connection.close(self._last)

    async def read(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn`` in one read-only transaction (one snapshot) and return its result.

        The seam for other tables (the ledger's, with ``models.ledger`` and its siblings): ``fn``
        must not keep the ``Database`` beyond the call. A database failure is ``StorageError``.
        """
        return await self._connection.read(fn)

    async def write(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn`` in one write transaction and return its result; commit or roll back all.

        The write lock is taken first, so the reads ``fn`` makes to decide cannot be overtaken
        by another writer. Whatever ``fn`` raises rolls everything back; a database failure is
        ``StorageError``, anything else reaches the caller unchanged. A database that newer
        code has migrated since this process opened it is not written (``StorageError``, and
        one ``storage.schema_newer`` line): this process's rules are out of date.
        """

        def guarded(db: Database) -> T:
            version = migrations.newer_than_code(db)
            if version is not None:
                if not self._outdated:
                    self._outdated = True
                    log.error(
                        "storage.schema_newer",
                        applied=version,
                        known=len(migrations.MIGRATIONS),
                    )
                raise StorageError(
                    f"newer code has migrated the database ({version} migrations; this code"
                    f" knows {len(migrations.MIGRATIONS)}): stop this process"
                )
            return fn(db)

        return await self._connection.write(guarded)

    async def ensure_user(self, user_id: int, language: str | None) -> UserRecord:
        """Return the user's record, creating it (data key, cache salt) on first sight.

        A changed ``language`` is saved; ``None`` means "not known" and keeps the stored one.
        """
        return await self._connection.call(lambda db: self._ensure_user(db, user_id, language))

    async def open_conversation(
        self, user_id: int, language: str | None, thread_id: int | None = None
    ) -> OpenConversation:
        """The user (as ``ensure_user``), the conversation and its turns: one trip.

        The active conversation, or with ``thread_id`` the topic's, started there and then
        for a topic the store does not know (``fresh``).
        """

        def read(db: Database) -> OpenConversation:
            user = self._ensure_user(db, user_id, language)
            fresh = False
            if thread_id is None:
                conversation = _active_conversation(db, user_id)
            else:
                conversation, fresh = _topic_conversation(db, user_id, thread_id)
            turns = self._history(db, user_id, conversation, None)
            return OpenConversation(user, conversation, turns, _titled(db, conversation), fresh)

        return await self._connection.call(read)

    async def topic_conversation(
        self, user_id: int, language: str | None, thread_id: int
    ) -> tuple[int, bool]:
        """The conversation of the user's topic ``thread_id``, and whether it was started now."""

        def find(db: Database) -> tuple[int, bool]:
            self._ensure_user(db, user_id, language)
            return _topic_conversation(db, user_id, thread_id)

        return await self._connection.call(find)

    async def get_user(self, user_id: int) -> UserRecord | None:
        """Return the user's record, or ``None`` if the user has never been seen (or forgot)."""
        return await self.read(lambda db: _select_user(db, user_id))

    async def set_model(self, user_id: int, model: str | None) -> None:
        """Remember the user's chosen model; ``None`` returns them to the default."""
        await self._connection.call(lambda db: _set_model(db, user_id, model))

    async def set_inline_history(self, user_id: int, *, keep: bool) -> None:
        """Whether the user's inline answers join their conversation."""

        def save(db: Database) -> None:
            cursor = db.execute(
                "UPDATE users SET inline_history = ? WHERE user_id = ?", [int(keep), user_id]
            )
            if cursor.rowcount == 0:
                raise UserNotFound("no such user")

        await self._connection.call(save)

    async def group_settings(self, chat_id: int) -> tuple[bool, bool] | None:
        """A group's (answers, reply_context) choices, or None if it never chose."""

        def load(db: Database) -> tuple[bool, bool] | None:
            row = db.execute(
                "SELECT answers, reply_context FROM group_settings WHERE chat_id = ?", [chat_id]
            ).fetchone()
            return None if row is None else (bool(row[0]), bool(row[1]))

        return await self.read(load)

    async def set_group_settings(self, chat_id: int, *, answers: bool, reply_context: bool) -> None:
        """Save a group's choices."""
        await self._connection.call(
            lambda db: db.execute(
                "INSERT INTO group_settings (chat_id, answers, reply_context, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (chat_id) DO UPDATE SET"
                " answers = excluded.answers, reply_context = excluded.reply_context,"
                " updated_at = excluded.updated_at",
                [chat_id, int(answers), int(reply_context), int(time.time())],
            )
        )

    async def move_group_settings(self, chat_id: int, to_chat_id: int) -> None:
        """Move a group's choices to the chat that took its place (its supergroup).

        The new chat's own choices, if it made any, stand; moving again changes nothing.
        """

        def move(db: Database) -> None:
            with db.atomic():
                db.execute(
                    "INSERT INTO group_settings (chat_id, answers, reply_context, updated_at)"
                    " SELECT ?, answers, reply_context, updated_at FROM group_settings"
                    " WHERE chat_id = ? ON CONFLICT (chat_id) DO NOTHING",
                    [to_chat_id, chat_id],
                )
                db.execute("DELETE FROM group_settings WHERE chat_id = ?", [chat_id])

        await self._connection.call(move)

    async def active_conversation(self, user_id: int) -> int:
        """Return the id of the user's active conversation, starting one if there is none."""
        return await self._connection.call(lambda db: _active_conversation(db, user_id))

    async def new_conversation(self, user_id: int, thread_id: int | None = None) -> int:
        """Start a new conversation and return its id.

        Without ``thread_id`` it becomes the active one; with one, it is that topic's (a
        conversation the topic had before keeps its turns but leaves the topic).
        """
        return await self._connection.call(lambda db: _new_conversation(db, user_id, thread_id))

    async def conversations(
        self, user_id: int, *, limit: int = 10, chat_only: bool = False
    ) -> list[Conversation]:
        """The user's conversations, most recently continued first, titles decrypted.

        ``chat_only``: only those in the chat itself, not in a topic, and of those only the
        active one if it has no turns yet (``/new`` pressed again and again leaves empty ones,
        which would push the real ones off the list). Raises ``HistoryCorrupted`` if a stored
        title does not open where it sits.
        """
        return await self.read(
            lambda db: self._conversations(db, user_id, limit, chat_only=chat_only)
        )

    async def switch_conversation(self, user_id: int, conversation_id: int) -> None:
        """Make the user's conversation (one not in a topic) the active one again.

        Raises ``ConversationNotFound`` if it is not the user's, or lives in a topic.
        """
        if not 0 < conversation_id <= MAX_ROW_ID:  # a forged id SQLite could not even bind
            raise ConversationNotFound("no such conversation for this user")

        def switch(db: Database) -> None:
            # Looked at under the write lock: another process may let the user forget between
            # the look and the switch, which then named a deleted conversation (a foreign key
            # SQLite refused, a storage failure where the conversation is simply gone).
            with db.atomic():
                row = db.execute(
                    "SELECT user_id, thread_id FROM conversations WHERE id = ?", [conversation_id]
                ).fetchone()
                if row is None or int(row[0]) != user_id or row[1] is not None:
                    raise ConversationNotFound("no such conversation for this user")
                db.execute(
                    "UPDATE users SET active_conversation = ? WHERE user_id = ?",
                    [conversation_id, user_id],
                )

        await self._connection.call(switch)

    async def set_title(self, user_id: int, conversation_id: int, title: str) -> None:
        """Name the user's conversation; the title is sealed like a turn."""
        await self._connection.call(lambda db: self._set_title(db, user_id, conversation_id, title))

    def _set_title(self, db: Database, user_id: int, conversation_id: int, title: str) -> None:
        data_key = self._data_key(db, user_id)
        _check_owner(db, user_id, conversation_id)
        sealed = seal_title(data_key, user_id, conversation_id, title)
        db.execute("UPDATE conversations SET title = ? WHERE id = ?", [sealed, conversation_id])

    async def add_turns(
        self,
        user_id: int,
        conversation_id: int,
        turns: Sequence[tuple[str, str]],
        *,
        tokens: Sequence[TokenCount | None] | None = None,
    ) -> list[Turn]:
        """Store several (role, text) turns as the next ones, in one transaction.

        A question and its answer go in together, so a crash never leaves half an exchange.
        ``tokens``: an upper count of each turn's tokens, None where none is known (``Turn``).
        """
        checked = _checked_turns(turns, tokens)
        return await self._connection.call(
            lambda db: self._add_turns(db, user_id, conversation_id, checked)
        )

    def turns_writer(
        self,
        user_id: int,
        conversation_id: int,
        turns: Sequence[tuple[str, str]],
        *,
        tokens: Sequence[TokenCount | None] | None = None,
    ) -> TurnsWriter:
        """The turns ``add_turns`` stores, to store inside another write (an answer's charge).

        A SIGKILL between two transactions left an answer charged and delivered but missing
        from its conversation; written in the charge's own, both are kept or neither.
        """
        checked = _checked_turns(turns, tokens)
        return Writer(lambda db: self._add_turns(db, user_id, conversation_id, checked), self._path)

    def title_writer(self, user_id: int, conversation_id: int, title: str) -> Writer[str]:
        """The title ``set_title`` stores, to store inside another write (the title's charge)."""

        def save(db: Database) -> str:
            self._set_title(db, user_id, conversation_id, title)
            return title

        return Writer(save, self._path)

    def undelivered_writer(  # noqa: PLR0913 -- the answer, where it goes, its claim
        self,
        user_id: int,
        request_id: str,
        place: Outbound,
        text: str,
        *,
        now: int,
        claimed_until: int,
        finish: Finish | None = None,
    ) -> AnswerRow:
        """The answer's row in ``undelivered`` (``models.outbox``), to write in its charge's.

        Its text sealed with the user's data key; claimed by the writer until
        ``claimed_until``, so no other process delivers it while this one does. ``finish``:
        what a private answer's resend needs to look like the live message. Its messages
        Telegram took by the time it is written (``AnswerRow.taken``) are counted in it.
        """

        def save(db: Database) -> bool:
            finished = finish or Finish()
            key = self._data_key(db, user_id)
            body = seal_answer(key, user_id, request_id, place, text, finished)
            outbox.insert(
                db,
                request_id,
                user_id,
                place,
                body,
                created_at=now,
                claimed_until=claimed_until,
                finish=finished,
                taken=row.taken,
            )
            return True

        row = AnswerRow(save, self._path)
        return row

    async def claim_undelivered(
        self, now: int, until: int, created_after: int, limit: int = outbox.BATCH
    ) -> tuple[list[Undelivered], int]:
        """Claim the oldest ``limit`` answers left (until ``until``), opened; and how many dropped.

        Dropped, in the same transaction: rows written before ``created_after`` (too old to
        send) and rows that do not open (their user's key gone or the row moved): logged by
        count, never by content.
        """

        def take(db: Database) -> tuple[list[Undelivered], int]:
            dropped = outbox.expire(db, created_after)
            taken = []
            for row in outbox.claim(db, now, until, limit):
                request_id, user_id = str(row[0]), int(row[1])
                place = outbox.place_of(row)
                columns = outbox.finish_of(row)
                try:
                    key = self._data_key(db, user_id)
                    text, header, finish = open_answer(
                        key, user_id, request_id, place, bytes(row[8]), columns
                    )
                except (UserNotFound, DataKeyCorrupted, HistoryCorrupted):
                    outbox.delete(db, request_id)
                    dropped += 1
                    continue
                place = dataclasses.replace(place, header=header)
                progress = outbox.progress_of(row)
                taken.append(
                    Undelivered(
                        request_id, user_id, row[2], place, text, int(row[9]), progress, finish
                    )
                )
            return taken, dropped

        return await self.write(take)

    async def delivered(self, request_id: str) -> bool:
        """Mark the answer delivered (its row deleted); whether it was still to deliver."""
        return await self.write(lambda db: outbox.delete(db, request_id))

    async def confirm_undelivered(self, request_id: str, claimed: int, until: int) -> bool:
        """Whether the answer claimed until ``claimed`` is still this pass's to send (renewed).

        Checked just before it is sent: an answer its user erased since the pass opened it, or
        that another process claimed once this pass's lease had ended, is not sent here.
        """
        return await self.write(lambda db: outbox.confirm(db, request_id, claimed, until))

    async def give_back_undelivered(
        self,
        claims: list[tuple[int, str, int]],
        taken: tuple[str, int, Progress] | None = None,
    ) -> None:
        """Give answers this pass claimed back to later passes (``models.outbox.give_back``).

        ``taken``: (request id, this pass's claim, its messages Telegram took) of the one that
        was not taken whole now, recorded first, in the same transaction.
        """

        def back(db: Database) -> None:
            if taken is not None:
                request_id, claim, progress = taken
                outbox.advance(db, request_id, progress, claim)
            outbox.give_back(db, claims)

        await self.write(back)

    async def not_delivered(self, request_id: str, progress: Progress | None = None) -> None:
        """Give the answer back to the next delivery pass (not delivered now).

        ``progress``: its messages Telegram took, which the pass does not send again.
        """
        await self.write(lambda db: outbox.unclaim(db, request_id, progress))

    async def release_undelivered(self) -> int:
        """Let the next delivery pass take every answer left (no other bot process runs)."""
        return await self.write(outbox.release_all)

    async def history(
        self, user_id: int, conversation_id: int, *, limit: int | None = None
    ) -> list[Turn]:
        """Return the conversation's turns, oldest first; with ``limit``, only the newest N.

        Raises ``HistoryCorrupted`` if any stored turn does not open where it sits.
        """
        if limit is not None and limit < 0:
            raise ValueError("limit must not be negative")
        return await self.read(lambda db: self._history(db, user_id, conversation_id, limit))

    async def forget(self, user_id: int) -> int:
        """Delete the user's turns, conversations and row (with the data key), in one go.

        Returns how many turns were deleted (0 for an unknown user). Deleted rows are zeroed
        in the file and the WAL is truncated, so their ciphertext is gone from disk too.
        """
        return await self._connection.call(lambda db: self._forget(db, user_id))

    async def user_count(self) -> int:
        """Return how many users the database holds."""
        return await self.read(_user_count)

    def _last(self, db: Database) -> None:
        self._data_keys.clear()
        if not self._read_only and not _checkpoint(db):
            log.info("store.checkpoint_deferred", at="close")

    def _data_key(self, db: Database, user_id: int) -> bytes:
        """The user's data key: the one their row holds now, unwrapped once while kept.

        The row is read each time: another process (a webhook replica) may have let the user
        forget and made them a new row and key since, and a key kept from before sealed what
        no one could open again (and opened nothing the new key sealed).
        """
        row = db.execute("SELECT data_key FROM users WHERE user_id = ?", [user_id]).fetchone()
        if row is None:
            raise UserNotFound("no such user")
        wrapped = bytes(row[0])
        kept = self._data_keys.get(user_id)
        if kept is not None and kept[0] == wrapped:
            key = kept[1]
        else:
            key = self._master_key.unwrap(user_id, wrapped)
        self._keep_data_key(user_id, wrapped, key)
        return key

    def _keep_data_key(self, user_id: int, wrapped: bytes, key: bytes) -> None:
        """Keep ``key`` (its row holds ``wrapped``) as the newest used, within the bound."""
        self._data_keys[user_id] = (wrapped, key)
        self._data_keys.move_to_end(user_id)
        while len(self._data_keys) > DATA_KEYS_KEPT:
            self._data_keys.popitem(last=False)

    def _ensure_user(self, db: Database, user_id: int, language: str | None) -> UserRecord:
        record = _select_user(db, user_id)
        if record is None:
            new_key: tuple[bytes, bytes] | None = None
            # Looked at again under the write lock: the bot and a replica may both have found
            # no row, and the second insert failed (the UNIQUE user id), its message unanswered.
            with db.atomic():
                record = _select_user(db, user_id)
                if record is None:
                    record, new_key = self._add_user(db, user_id, language)
            if new_key is not None:  # kept once its row is committed, never a key not stored
                self._keep_data_key(user_id, *new_key)
        if language is not None and language != record.language:
            db.execute("UPDATE users SET language = ? WHERE user_id = ?", [language, user_id])
            record = dataclasses.replace(record, language=language)
        return record

    def _add_user(
        self, db: Database, user_id: int, language: str | None
    ) -> tuple[UserRecord, tuple[bytes, bytes]]:
        """Insert the user's row, with a new data key; the record and the key (wrapped, plain)."""
        data_key = new_data_key()
        wrapped = self._master_key.wrap(user_id, data_key)
        record = UserRecord(
            user_id=user_id,
            language=language,
            model=None,
            cache_salt=secrets.token_urlsafe(CACHE_SALT_BYTES),
            created_at=int(time.time()),
        )
        db.execute(
            "INSERT INTO users (user_id, language, model, cache_salt, data_key, created_at)"
            " VALUES (?, ?, NULL, ?, ?, ?)",
            [
                user_id,
                language,
                record.cache_salt,
                wrapped,
                record.created_at,
            ],
        )
        return record, (wrapped, data_key)

    def _add_turns(
        self,
        db: Database,
        user_id: int,
        conversation_id: int,
        turns: Sequence[tuple[Role, str, TokenCount | None]],
    ) -> list[Turn]:
        data_key = self._data_key(db, user_id)
        stored: list[Turn] = []
        with db.atomic():
            row = db.execute(
                "SELECT user_id, (SELECT COALESCE(MAX(seq), 0) FROM turns"
                " WHERE conversation_id = conversations.id) FROM conversations WHERE id = ?",
                [conversation_id],
            ).fetchone()
            if row is None or int(row[0]) != user_id:
                raise ConversationNotFound("no such conversation for this user")
            created_at = int(time.time())
            for offset, (role, text, tokens) in enumerate(turns, start=1):
                seq = int(row[1]) + offset
                body = seal_body(data_key, TurnPlace(user_id, conversation_id, seq, role), text)
                counted, model = (None, None) if tokens is None else (tokens.tokens, tokens.model)
                db.execute(
                    "INSERT INTO turns (user_id, conversation_id, seq, role, body, created_at,"
                    " tokens, tokens_model) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [user_id, conversation_id, seq, role, body, created_at, counted, model],
                )
                stored.append(Turn(conversation_id, seq, role, text, created_at, tokens))
            db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?",
                [created_at, conversation_id],
            )
        return stored

    def _conversations(
        self, db: Database, user_id: int, limit: int, *, chat_only: bool
    ) -> list[Conversation]:
        row = db.execute(
            "SELECT active_conversation FROM users WHERE user_id = ?", [user_id]
        ).fetchone()
        if row is None:
            return []
        active = row[0]
        rows = db.execute(
            "SELECT id, thread_id, title, created_at, COALESCE(updated_at, created_at)"
            " FROM conversations WHERE user_id = ? AND (NOT ? OR (thread_id IS NULL AND"
            " (id IS ? OR EXISTS (SELECT 1 FROM turns WHERE conversation_id = conversations.id))))"
            " ORDER BY COALESCE(updated_at, created_at) DESC, id DESC LIMIT ?",
            [user_id, int(chat_only), active, limit],
        ).fetchall()
        found: list[Conversation] = []
        for conversation_id, thread_id, sealed, created_at, updated_at in rows:
            title = None
            if sealed is not None:
                data_key = self._data_key(db, user_id)
                title = open_title(data_key, user_id, int(conversation_id), bytes(sealed))
            found.append(
                Conversation(
                    conversation_id=int(conversation_id),
                    thread_id=None if thread_id is None else int(thread_id),
                    title=title,
                    created_at=int(created_at),
                    updated_at=int(updated_at),
                    active=active is not None and int(active) == int(conversation_id),
                )
            )
        return found

    def _history(
        self, db: Database, user_id: int, conversation_id: int, limit: int | None
    ) -> list[Turn]:
        data_key = self._data_key(db, user_id)
        _check_owner(db, user_id, conversation_id)
        rows = db.execute(
            "SELECT seq, role, body, created_at, tokens, tokens_model FROM turns"
            " WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?",
            [conversation_id, -1 if limit is None else limit],
        ).fetchall()
        turns: list[Turn] = []
        for seq, stored_role, body, created_at, tokens, model in reversed(rows):
            role = _stored_role(stored_role, conversation_id, int(seq))
            place = TurnPlace(user_id, conversation_id, int(seq), role)
            text = open_body(data_key, place, bytes(body))
            counted = None if tokens is None or model is None else TokenCount(int(tokens), model)
            turns.append(Turn(conversation_id, int(seq), role, text, int(created_at), counted))
        return turns

    def _forget(self, db: Database, user_id: int) -> int:
        with db.atomic():
            deleted = db.execute("DELETE FROM turns WHERE user_id = ?", [user_id]).rowcount
            db.execute("DELETE FROM conversations WHERE user_id = ?", [user_id])
            db.execute("DELETE FROM users WHERE user_id = ?", [user_id])
            outbox.forget(db, user_id)  # answers left to deliver: sealed with the key now gone
            # Where a cut-off answer was (its topic): not kept, nor told there, once erased.
            db.execute(
                "DELETE FROM hold_chats WHERE request_id IN"
                " (SELECT request_id FROM holds WHERE user_id = ?)",
                [user_id],
            )
        self._data_keys.pop(user_id, None)
        if not _checkpoint(db):
            log.warning("store.checkpoint_deferred")
        return int(deleted)


def _checked_turns(
    turns: Sequence[tuple[str, str]], tokens: Sequence[TokenCount | None] | None
) -> list[tuple[Role, str, TokenCount | None]]:
    counts = list(tokens) if tokens is not None else [None] * len(turns)
    if len(counts) != len(turns):
        raise ValueError("tokens must give each turn a count, or None")
    return [(as_role(role), text, count) for (role, text), count in zip(turns, counts, strict=True)]


def _checkpoint(db: Database) -> bool:
    """Checkpoint and truncate the WAL unless something holds it up; whether it was done.

    It never waits: a reader on an older snapshot (Litestream keeps one; a backup while it
    copies) or another process's writer would keep it waiting the busy timeout on the store's
    one thread, and every call behind it. Left undone, the next start, forget or close does it.
    """
    (waits,) = db.execute("PRAGMA busy_timeout").fetchone()
    db.execute("PRAGMA busy_timeout = 0")
    try:
        (busy, _, _) = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(waits):d}")
    return int(busy) == 0


def _configure(db: Database) -> None:
    """Set the connection's pragmas once; they hold for its lifetime, so calls pay nothing."""
    db.enable_wal()
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    (secure_delete,) = db.execute("PRAGMA secure_delete = ON").fetchone()
    if secure_delete != 1:
        raise StorageError("this SQLite build cannot turn secure_delete on")


def _check_master_key(db: Database, path: Path, master_key: MasterKey) -> None:
    """Fail at startup, not on each user's next message, when the master key is the wrong one."""
    row = db.execute("SELECT user_id, data_key FROM users LIMIT 1").fetchone()
    if row is None:
        return
    try:
        master_key.unwrap(int(row[0]), bytes(row[1]))
    except DataKeyCorrupted as exc:
        raise DataKeyCorrupted(
            f"the master key does not open the data keys in {path}: "
            "is it the key this database was created with?"
        ) from exc


def _user_record(row: Any) -> UserRecord:  # noqa: ANN401 -- a sqlite3 row is untyped
    user_id, language, model, cache_salt, created_at, inline_history = row
    return UserRecord(
        user_id=int(user_id),
        language=None if language is None else str(language),
        model=None if model is None else str(model),
        cache_salt=str(cache_salt),
        created_at=int(created_at),
        inline_history=bool(inline_history),
    )


def holds_data_keys(path: Path) -> bool:
    """Whether the database at ``path`` holds any user's data key, wrapped by a master key.

    A look before the master key is made: a database that holds some must never get a new
    key, which would open none of them. A file that is not a readable database (or has no
    users yet) answers False, and opening it says what is wrong.
    """
    if not path.is_file():
        return False
    try:
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)) as conn:
            return conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None
    except sqlite3.Error:
        return False


def _select_user(db: Database, user_id: int) -> UserRecord | None:
    row = db.execute(
        "SELECT user_id, language, model, cache_salt, created_at, inline_history FROM users"
        " WHERE user_id = ?",
        [user_id],
    ).fetchone()
    return None if row is None else _user_record(row)


def _set_model(db: Database, user_id: int, model: str | None) -> None:
    cursor = db.execute("UPDATE users SET model = ? WHERE user_id = ?", [model, user_id])
    if cursor.rowcount == 0:
        raise UserNotFound("no such user")


def _active_conversation(db: Database, user_id: int) -> int:
    active = _active(db, user_id)
    if active is not None:
        return active
    # Started under the write lock once none is found there either: the bot and a replica may
    # both have found none, and the later one's would have replaced the earlier's, whose answer
    # then sat in a conversation no longer the user's active one.
    with db.atomic():
        active = _active(db, user_id)
        return _new_conversation(db, user_id) if active is None else active


def _active(db: Database, user_id: int) -> int | None:
    row = db.execute(
        "SELECT active_conversation FROM users WHERE user_id = ?", [user_id]
    ).fetchone()
    if row is None:
        raise UserNotFound("no such user")
    return None if row[0] is None else int(row[0])


def _topic_conversation(db: Database, user_id: int, thread_id: int) -> tuple[int, bool]:
    """The conversation of the user's topic, and whether it had to be started now."""
    found = _topic(db, user_id, thread_id)
    if found is not None:
        return found, False
    # As ``_active_conversation``: a second process's start would move the first's out of the
    # topic (one conversation a topic), with the answer just stored in it.
    with db.atomic():
        found = _topic(db, user_id, thread_id)
        if found is not None:
            return found, False
        return _new_conversation(db, user_id, thread_id), True


def _topic(db: Database, user_id: int, thread_id: int) -> int | None:
    row = db.execute(
        "SELECT id FROM conversations WHERE user_id = ? AND thread_id = ?", [user_id, thread_id]
    ).fetchone()
    return None if row is None else int(row[0])


def _titled(db: Database, conversation_id: int) -> bool:
    row = db.execute(
        "SELECT title IS NOT NULL FROM conversations WHERE id = ?", [conversation_id]
    ).fetchone()
    return row is not None and bool(row[0])


def _new_conversation(db: Database, user_id: int, thread_id: int | None = None) -> int:
    with db.atomic():  # the write lock first (``LockingDatabase``): the id mark read under it
        if db.execute("SELECT 1 FROM users WHERE user_id = ?", [user_id]).fetchone() is None:
            raise UserNotFound("no such user")
        if thread_id is not None:
            db.execute(
                "UPDATE conversations SET thread_id = NULL WHERE user_id = ? AND thread_id = ?",
                [user_id, thread_id],
            )
        now = int(time.time())
        # The next id after the highest ever given out (``id_marks``, m0021), never one a
        # deleted conversation had: a /history button from before /forget names that id.
        cursor = db.execute(
            "INSERT INTO conversations (id, user_id, created_at, updated_at, thread_id)"
            " VALUES ((SELECT high + 1 FROM id_marks WHERE name = 'conversations'), ?, ?, ?, ?)",
            [user_id, now, now, thread_id],
        )
        conversation_id = cursor.lastrowid
        if conversation_id is None:  # pragma: no cover -- an INSERT always sets it
            raise StorageError("SQLite returned no id for a new conversation")
        if thread_id is None:
            db.execute(
                "UPDATE users SET active_conversation = ? WHERE user_id = ?",
                [conversation_id, user_id],
            )
    return conversation_id


def _check_owner(db: Database, user_id: int, conversation_id: int) -> None:
    row = db.execute("SELECT user_id FROM conversations WHERE id = ?", [conversation_id]).fetchone()
    if row is None or int(row[0]) != user_id:
        raise ConversationNotFound("no such conversation for this user")


def _stored_role(value: object, conversation_id: int, seq: int) -> Role:
    try:
        return as_role(str(value))
    except ValueError as exc:
        raise HistoryCorrupted(
            f"turn {seq} of conversation {conversation_id} has an unknown role"
        ) from exc


def _user_count(db: Database) -> int:
    (count,) = db.execute("SELECT COUNT(*) FROM users").fetchone()
    return int(count)
