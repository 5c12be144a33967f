"""Answers charged whose final message Telegram is not known to have taken: what a restart sends.

An answer's charge (with its exchange, where it has a conversation) and its row here are
written in one transaction (``Credit.settle``'s ``also``: ``Store.undelivered_writer``), so a bot
killed between that commit and the final message finds the answer here at its next start.
The row is deleted once Telegram took the final message and the notes under it
(``Store.delivered``): its absence is the durable "delivered" mark. Each row names where the
answer goes (``Outbound``) and holds its text (and the line above it, an inline answer's
question) sealed with the user's data key,
bound to the user, the request and where it goes, as a turn's is to its place
(``models.atrest``): a row pointed elsewhere in the file does not open; nothing readable is
stored, and forgetting the user (their data key) makes it unreadable, and deletes it.

``claimed_until`` (Unix seconds) is how long a bot process holds the right to deliver it: the
one answering claims it as it writes it; another replica (webhook mode) takes it only once
that lease has ended, and a single bot's start takes every row (``release_all``).

``rich_taken``, ``parts_taken`` and ``notes_taken`` (``Progress``) count the messages of a
private answer Telegram took, its notes under it too, each recorded as Telegram takes it
(``took``): a delivery sends the rest only, and a bot killed once the last note went out shows
none of it twice. A count below zero (the bot writes none) is read as none taken.

``Finish`` makes a private answer sent again look like the live one: a reply to its question,
the note and button the live one has under it (cut at its length limit: Continue; broken off:
the note saying so, Retry), and the note saying how much of a file the model read. It is sealed
with the text (``seal_answer``), so whoever can write the file cannot change which message a
resend replies to or what its button asks: a row whose columns ``reply_to``, ``ending``,
``retry`` disagree with it is logged (``outbox.finish_refused``, no text) and sent as sealed.
The columns are still written (ids and a word, what an operator reads of a row; a change to
one is told), never trusted; a row the previous release wrote has no sealed ``Finish`` (its
plaintext lacks the key, which the seal keeps anyone from taking out of a newer row) and is
sent by its columns, as it was (such a row is at most ``services.chat.DELIVER_WITHIN_S`` old).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from models.errors import HistoryCorrupted

if TYPE_CHECKING:
    from sqlite_utils import Database

Surface = Literal["private", "message", "inline"]
Ending = Literal["cut", "broke_off", "lost", "stalled", "window_full"]
"""How an answer with text ended, where not as a whole answer: cut at its length limit, or its
stream failed after text (the model failed, the stream was lost or stalled, the window filled)."""

_AAD = b"veil/undelivered/v2|"
_NONCE_SIZE = 12
BATCH = 100  # rows a delivery pass claims (and opens) at a time

log = structlog.get_logger("veil.outbox")


@dataclass(frozen=True, slots=True)
class Outbound:
    """Where an answer's final message goes.

    ``private``: sent as new messages in the user's private chat (``chat_id``, in topic
    ``thread_id`` if any); ``message``: an edit of the bot's message ``message_id`` in group
    ``chat_id`` (the placeholder the answer streamed into); ``inline``: an edit of the inline
    (or guest) message ``inline_message_id``, ``header`` (its question line) above the answer.
    """

    surface: Surface
    chat_id: int | None = None
    thread_id: int | None = None
    message_id: int | None = None
    inline_message_id: str | None = None
    header: str = field(default="", repr=False)

    @classmethod
    def private(cls, chat_id: int, thread_id: int | None = None) -> Outbound:
        """New messages in a private chat (its topic ``thread_id``)."""
        return cls("private", chat_id=chat_id, thread_id=thread_id)

    @classmethod
    def message(cls, chat_id: int, message_id: int) -> Outbound:
        """An edit of the bot's message ``message_id`` in chat ``chat_id``."""
        return cls("message", chat_id=chat_id, message_id=message_id)

    @classmethod
    def inline(cls, inline_message_id: str, header: str = "") -> Outbound:
        """An edit of an inline (or guest) message, ``header`` above the answer."""
        return cls("inline", inline_message_id=inline_message_id, header=header)

    @property
    def edited(self) -> bool:
        """Delivered by editing a message already there (idempotent: never shown twice)."""
        return self.surface != "private"


@dataclass(frozen=True, slots=True)
class Progress:
    """The messages of a private answer Telegram has taken: a delivery sends only the rest.

    A long answer goes out as several messages; when one is not taken now (a long flood wait),
    those before it were, and must not be shown again. ``rich``: rich messages taken
    (``bot.rich.rich_parts``); ``parts``: messages of the entity (or plain) rendering taken, of
    the whole answer where ``rich`` is 0, else of the rest once Telegram refused the next rich
    message (``bot.streaming.DraftSink``). Both split the text the same way each time, so a
    count says where to go on; a count reveals nothing of the text. ``notes``: the notes
    under it taken (``Finish``: the ending's, then the file's), sent after its last message.
    """

    rich: int = 0
    parts: int = 0
    notes: int = 0  # of the notes under it (``Finish``), once every message of it was taken


@dataclass(frozen=True, slots=True)
class Finish:
    """What the live final message of a private answer has besides its text, for a resend.

    ``reply_to``: the question's message (None: asked by a button); ``ending``: how it ended
    (None: whole), which says the note under it; ``retry``: the key a broken-off answer's Retry
    button carries (``services.chat.ChatService.retry_question``); ``file_read``: the percent
    of the question's file the model read, where it read only its start (its note follows).
    """

    reply_to: int | None = None
    ending: Ending | None = None
    retry: str | None = None
    file_read: int | None = None

    @property
    def notes(self) -> int:
        """How many notes go under the answer: its ending's (if any), then its file's (if any)."""
        return (self.ending is not None) + (self.file_read is not None)


@dataclass(frozen=True, slots=True)
class Undelivered:
    """One answer to deliver again: whose, where, in which language, and its text."""

    request_id: str
    user_id: int
    language: str | None
    place: Outbound
    text: str = field(repr=False)
    created_at: int
    progress: Progress = Progress()  # its messages Telegram took already (a private answer's)
    finish: Finish = Finish()  # its question and the note under it (``Finish``)


def seal_answer(  # noqa: PLR0913, PLR0917 -- the key, where the row sits, what it seals
    data_key: bytes,
    user_id: int,
    request_id: str,
    place: Outbound,
    text: str,
    finish: Finish,
) -> bytes:
    """The answer's text, its header and its ``Finish``, sealed under the user's data key."""
    sealed = {"text": text, "header": place.header, "finish": asdict(finish)}
    plaintext = json.dumps(sealed).encode("utf-8", "surrogatepass")
    nonce = os.urandom(_NONCE_SIZE)
    aad = _aad(user_id, request_id, place)
    return nonce + ChaCha20Poly1305(data_key).encrypt(nonce, plaintext, aad)


def open_answer(  # noqa: PLR0913, PLR0917 -- the key, where the row sits, what it holds
    data_key: bytes,
    user_id: int,
    request_id: str,
    place: Outbound,
    blob: bytes,
    columns: Finish,
) -> tuple[str, str, Finish]:
    """(text, header, finish) of a sealed row; ``HistoryCorrupted`` if it does not open there.

    Where it sits: its user, its request and where it goes (``place``, its header aside), so a
    row whose destination was changed in the file is never opened, let alone sent there. Its
    ``Finish`` is the sealed one; ``columns`` (the row's, ``finish_of``) is used only for a row
    sealed without one (a previous release's), and one that disagrees is logged and set aside.
    """
    try:
        plaintext = ChaCha20Poly1305(data_key).decrypt(
            blob[:_NONCE_SIZE], blob[_NONCE_SIZE:], _aad(user_id, request_id, place)
        )
        opened = json.loads(plaintext.decode("utf-8", "surrogatepass"))
        text, header = str(opened["text"]), str(opened["header"])
        sealed = opened.get("finish")
        finish = columns if sealed is None else _finish(sealed)
    except (InvalidTag, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise HistoryCorrupted("an undelivered answer fails to open where it is stored") from exc
    altered = [
        name
        for name in ("reply_to", "ending", "retry")
        if getattr(columns, name) != getattr(finish, name)
    ]
    if altered:
        log.warning(
            "outbox.finish_refused", request_id=request_id, user_id=user_id, altered=altered
        )
    return text, header, finish


def _finish(sealed: dict[str, Any]) -> Finish:
    """The ``Finish`` a row sealed (``seal_answer``); an ending this release does not know: none."""
    ending = sealed["ending"] if sealed["ending"] in get_args(Ending) else None
    reply_to, retry, file_read = sealed["reply_to"], sealed["retry"], sealed["file_read"]
    return Finish(
        reply_to=None if reply_to is None else int(reply_to),
        ending=ending,
        retry=None if retry is None else str(retry),
        file_read=None if file_read is None else int(file_read),
    )


def _aad(user_id: int, request_id: str, place: Outbound) -> bytes:
    """The row's binding: its user, its request and every column that says where it goes."""
    where = json.dumps(
        [
            place.surface,
            place.chat_id,
            place.thread_id,
            place.message_id,
            place.inline_message_id,
        ]
    )
    return _AAD + b"%d|%s|%s" % (user_id, request_id.encode(), where.encode())


def insert(  # noqa: PLR0913 -- a row's columns
    db: Database,
    request_id: str,
    user_id: int,
    place: Outbound,
    body: bytes,
    *,
    created_at: int,
    claimed_until: int,
    finish: Finish = Finish(),
    taken: Progress = Progress(),
) -> None:
    """Add the row of an answer being delivered now (claimed by its writer until then).

    ``taken``: its messages Telegram took already (the row written after them).
    """
    db.execute(
        "INSERT INTO undelivered (request_id, user_id, surface, chat_id, thread_id, message_id,"
        " inline_message_id, body, created_at, claimed_until, reply_to, ending, retry,"
        " rich_taken, parts_taken, notes_taken)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            request_id,
            user_id,
            place.surface,
            place.chat_id,
            place.thread_id,
            place.message_id,
            place.inline_message_id,
            body,
            created_at,
            claimed_until,
            finish.reply_to,
            finish.ending,
            finish.retry,
            taken.rich,
            taken.parts,
            taken.notes,
        ],
    )


def expire(db: Database, created_before: int) -> int:
    """Delete the rows written before ``created_before``: too old to send; how many."""
    return int(
        db.execute("DELETE FROM undelivered WHERE created_at < ?", [created_before]).rowcount
    )


def claim(db: Database, now: int, until: int, limit: int = BATCH) -> list[Any]:
    """Claim ``limit`` rows nobody holds at ``now`` until ``until``; their rows.

    A batch, not every row: a pass holds (opened, in memory) and leases only what it can send
    before its lease ends, and a Telegram down for hours at scale leaves many. Oldest first,
    but rows given back as not taken now (``give_back``: the time they were tried) after the
    rest, longest waiting first: one chat's long flood wait holds up no one else's answers.
    """
    rows = db.execute(
        "SELECT u.request_id, u.user_id, users.language, u.surface, u.chat_id, u.thread_id,"
        " u.message_id, u.inline_message_id, u.body, u.created_at, u.rich_taken, u.parts_taken,"
        " u.reply_to, u.ending, u.retry, u.notes_taken"
        " FROM undelivered u LEFT JOIN users ON users.user_id = u.user_id"
        " WHERE u.claimed_until <= ? ORDER BY u.claimed_until, u.created_at, u.rowid LIMIT ?",
        [now, limit],
    ).fetchall()
    db.conn.executemany(
        "UPDATE undelivered SET claimed_until = ? WHERE request_id = ?",
        [(until, row[0]) for row in rows],
    )
    return list(rows)


def confirm(db: Database, request_id: str, claimed: int, until: int) -> bool:
    """Renew this pass's claim (made until ``claimed``) until ``until``; False if it is lost.

    Lost: the row is gone (its user erased, or delivered by the answer itself) or another
    process claimed it after this pass's lease ended (a later claim is always a later time).
    """
    return bool(
        db.execute(
            "UPDATE undelivered SET claimed_until = ? WHERE request_id = ? AND claimed_until = ?",
            [until, request_id, claimed],
        ).rowcount
    )


def give_back(db: Database, claims: list[tuple[int, str, int]]) -> None:
    """Let later passes take these rows: each (claimed until now, request id, this pass's claim).

    ``0`` for rows not tried (taken first), the time it was tried for one Telegram did not take
    now (taken after the untried ones); a row another process claimed since is left alone.
    """
    db.conn.executemany(
        "UPDATE undelivered SET claimed_until = ? WHERE request_id = ? AND claimed_until = ?",
        claims,
    )


def advance(db: Database, request_id: str, progress: Progress, claim: int) -> None:
    """Record the messages of the row's answer Telegram took (this pass's claim ``claim``)."""
    db.execute(
        "UPDATE undelivered SET rich_taken = ?, parts_taken = ?, notes_taken = ?"
        " WHERE request_id = ? AND claimed_until = ?",
        [progress.rich, progress.parts, progress.notes, request_id, claim],
    )


def took(db: Database, request_id: str, progress: Progress) -> bool:
    """Record the messages of the answer Telegram took so far, as its own delivery sends them.

    Whoever holds the claim: the process sending the answer's messages now knows what
    Telegram took (a pass that claimed the row anew meanwhile leaves an answer going out here).
    False: the row is gone (its user erased it, or another process delivered it).
    """
    return (
        db.execute(
            "UPDATE undelivered SET rich_taken = ?, parts_taken = ?, notes_taken = ?"
            " WHERE request_id = ?",
            [progress.rich, progress.parts, progress.notes, request_id],
        ).rowcount
        > 0
    )


def finish_of(row: Any) -> Finish:  # noqa: ANN401 -- a sqlite3 row is untyped
    """The ``Finish`` of a ``claim`` row's columns (an ending it does not know is none).

    A row's own is sealed (``open_answer``): these are a previous release's rows' only one.
    """
    ending = row[13] if row[13] in get_args(Ending) else None
    return Finish(reply_to=row[12], ending=ending, retry=row[14])


def progress_of(row: Any) -> Progress:  # noqa: ANN401 -- a sqlite3 row is untyped
    """The ``Progress`` of a ``claim`` row; a count below zero: none taken (the answer whole).

    The bot never writes one below zero: such a row was altered in the file, and a count used
    as an index from the end sent its last message first, or only its last note. None of its
    counts is trusted then: it goes out whole, as an answer never sent does (logged, no text).
    """
    progress = Progress(rich=int(row[10]), parts=int(row[11]), notes=int(row[15]))
    if min(progress.rich, progress.parts, progress.notes) < 0:
        log.warning("outbox.progress_refused", request_id=str(row[0]), user_id=int(row[1]))
        return Progress()
    return progress


def place_of(row: Any) -> Outbound:  # noqa: ANN401 -- a sqlite3 row is untyped
    """The ``Outbound`` of a ``claim`` row (its header still sealed)."""
    surface: Surface = row[3]
    return Outbound(
        surface, chat_id=row[4], thread_id=row[5], message_id=row[6], inline_message_id=row[7]
    )


def delete(db: Database, request_id: str) -> bool:
    """Delete the row: delivered (or given up); whether there was one."""
    return bool(db.execute("DELETE FROM undelivered WHERE request_id = ?", [request_id]).rowcount)


def unclaim(db: Database, request_id: str, progress: Progress | None = None) -> None:
    """Let the next delivery pass take the row (this process could not deliver it now).

    ``progress``: the messages of it Telegram took meanwhile (the rest is what a pass sends).
    """
    if progress is None:
        db.execute("UPDATE undelivered SET claimed_until = 0 WHERE request_id = ?", [request_id])
        return
    db.execute(
        "UPDATE undelivered SET claimed_until = 0, rich_taken = ?, parts_taken = ?,"
        " notes_taken = ? WHERE request_id = ?",
        [progress.rich, progress.parts, progress.notes, request_id],
    )


def release_all(db: Database) -> int:
    """Let every row be taken now (a start where no other bot process runs); how many."""
    return int(
        db.execute("UPDATE undelivered SET claimed_until = 0 WHERE claimed_until > 0").rowcount
    )


def forget(db: Database, user_id: int) -> None:
    """Delete the user's rows (their erasure)."""
    db.execute("DELETE FROM undelivered WHERE user_id = ?", [user_id])
