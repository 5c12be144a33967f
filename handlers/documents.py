"""A small text file (a .txt, .md, .csv, .py...) sent in the private chat, read as a question.

A leaf shared by the chat's router (``handlers.chat.on_document``): the file's text goes to the
model as a fenced block headed by its name, with the caption, if any, after it as the question
(``services.documents.TextFile``, which also cuts a file too long for the model's window); from
there it is a question like any other (sealed to the worker, stored encrypted, never
logged). Only plain text of at most ``DOCUMENT_MOST`` bytes is read, in the encoding it is in
(``services.encodings.decoded``): UTF-8; UTF-16, with its byte-order mark (Windows Notepad's
"Unicode") or without where its NULs show it; else the 8-bit code page its letters read best
in: the Windows one Notepad's "ANSI" saves in, which many of Veil's Russian, Kazakh and Western
users still get: cp1251 (Cyrillic), KZ-1048 (Kazakh's own), cp1252 (Western European, Latin-1
read the same); or an older Cyrillic one: KOI8-R, KOI8-U, DOS's cp866, Mac OS Cyrillic; or
Chinese, Japanese or Korean in an 8-bit encoding (GBK, Big5, Shift_JIS, EUC-JP, EUC-KR).
A larger file is refused by the size Telegram states, before it is fetched, or (its size not
stated) once the download runs past it; one that is not text (a PDF, an image sent as a file,
an archive, a program: a control character, a NUL say) after it is fetched, and so is one with
no text in it (empty, or blanks only), and one of Chinese, Japanese or Korean whose encoding
cannot be told (``UNDECIDED``: the user is asked for UTF-8) (``Refused``).

Files sent at once (an album: a message each, one ``media_group_id``) are one question
(``Albums``): the first waits for the rest, each read by its own update; a text the user sends
meanwhile is its question too.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, cast

import aiohttp
import structlog
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramNetworkError
from aiogram.methods import GetFile

from services.encodings import decoded, undecided

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.types import Document, Message

DOCUMENT_MOST = 32 * 1024  # bytes of text read from one file (~8,000 tokens at most)
CHUNK = 8 * 1024  # bytes of a download read at a time
DOWNLOAD_TIMEOUT = 30  # seconds a download may take in all (aiogram's own default)
ALBUM_WAIT = 1.0  # seconds the first file of an album waits for the next, after each
ALBUM_LONGEST = 10.0  # seconds an album gathers at most, from its first file (``Albums``)

log = structlog.get_logger("veil.documents")


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a file is not read: the catalog key of the user's note, and the log's reason."""

    key: str
    reason: str


TOO_BIG = Refused("document_too_big", "too_big")
NOT_TEXT = Refused("document_not_text", "not_text")
UNDECIDED = Refused("document_encoding_unknown", "encoding_unknown")
UNAVAILABLE = Refused("document_unavailable", "unavailable")
EMPTY = Refused("document_empty", "empty")


async def read_text(bot: Bot, document: Document) -> str | Refused:
    """The file's text, if it is text of at most ``DOCUMENT_MOST`` bytes; else why not.

    A file Telegram states as larger is not fetched at all (nor one Telegram will not hand a
    bot: "file is too big", over 20 MB); one Telegram will not hand over for another reason
    (``UNAVAILABLE``) neither; one whose size is not stated (``file_size`` is
    optional) is read no further than ``DOCUMENT_MOST`` bytes and one chunk.
    """
    if document.file_size is not None and document.file_size > DOCUMENT_MOST:
        return TOO_BIG
    try:
        file = await bot.get_file(document.file_id)
    except TelegramBadRequest as exc:
        # Else "wrong file_id or the file is temporarily unavailable": a refusal, no bug.
        return TOO_BIG if "too big" in exc.message else UNAVAILABLE
    if file.file_path is None or (file.file_size or 0) > DOCUMENT_MOST:
        return TOO_BIG
    data = await _fetched(bot, document.file_id, file.file_path)
    if data is None:
        return TOO_BIG
    text = decoded(data)
    if text is None:
        return UNDECIDED if undecided(data) else NOT_TEXT
    return text if text.strip() else EMPTY


async def _fetched(bot: Bot, file_id: str, file_path: str) -> bytes | None:
    """The file at ``file_path``, or None once it runs past ``DOCUMENT_MOST`` bytes.

    Read chunk by chunk and let go of there: aiogram's ``Bot.download`` reads a file whole,
    up to Telegram's 20 MB, before the caller can look at its size.
    A download that fails (Telegram's file server away, slow or refusing) is
    ``TelegramNetworkError``, as a Bot API call that fails on the way: Telegram failing, no bug.
    So is a redirect, which is not followed: the URL holds the bot's token, and whatever a
    proxy sends it to (its login page, quoting the URL) would be read as the user's file.
    """
    url = bot.session.api.file_url(bot.token, file_path)
    data = bytearray()
    # The bot's session is aiogram's aiohttp one (``bot.telegram.TurnTakingSession``).
    session = await cast("AiohttpSession", bot.session).create_session()
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT), allow_redirects=False
        ) as reply:
            if reply.status != HTTPStatus.OK:
                failed = f"the file download failed: HTTP {reply.status}"
                raise TelegramNetworkError(GetFile(file_id=file_id), failed)
            async for chunk in reply.content.iter_chunked(CHUNK):
                data += chunk
                if len(data) > DOCUMENT_MOST:
                    return None
    except (aiohttp.ClientError, TimeoutError) as exc:
        failed = f"the file download failed: {type(exc).__name__}"
        raise TelegramNetworkError(GetFile(file_id=file_id), failed) from exc
    return bytes(data)


@dataclass(frozen=True, slots=True)
class Read:
    """One file sent: its message, and its text or why it was not read."""

    message: Message
    text: str | Refused = field(repr=False)


@dataclass(frozen=True, slots=True)
class Gathered:
    """An album's files read, in the order sent, and the texts the user sent meanwhile."""

    files: list[Read]
    said: tuple[str, ...] = field(default=(), repr=False)


@dataclass(slots=True)
class _Album:
    """The files of one album so far, by message id (None: still being read), and when due.

    ``topic``: the private chat's topic it was sent in; ``said``: the texts that joined it;
    ``last``: when it is due at the latest, however much more comes (``Albums``);
    ``dropped``: the user sent /cancel while it gathered (``Albums.cancel``).
    """

    due: float
    last: float
    parts: dict[int, Read | None]
    topic: int | None = None
    said: list[str] = field(default_factory=list)
    came: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False

    def came_now(self, now: float, wait: float) -> None:
        """Something came at ``now``: wait ``wait`` seconds more for what may follow, if due."""
        self.due = min(now + wait, self.last)
        self.came.set()


class Albums:
    """Files sent at once, read as one question.

    The apps send an album of files as a message each, one right after another, the caption
    (the question) on one of them; each was a question of its own, the question asked with
    one file, the others asked with none. The first file of an album now waits until none
    has come for ``wait`` seconds and every file that came is read, and asks them all.

    A text the user sends while their album still gathers (in the same chat and topic) is
    its question too (``said``), after the caption: the user sent the files, then typed what
    to do with them. It was asked on its own at once, before the files it was about, and
    the album, asked once gathered, was refused as "still writing the previous answer".

    So is a next album, or a file sent alone, that comes while one gathers in the same chat
    and topic: the apps send more than ten files as albums of ten and the rest (the last
    file alone, no album), one right after another; the first was asked without the question
    on a later one, and each later one refused as "still writing the previous answer".

    An album gathers ``longest`` seconds at most from its first file: each text waited a
    second more, so texts sent a second apart (a user typing on, a script) kept it open, and
    its answer unasked, for as long as they came. Then it is asked with what came so far; what
    comes while its files are still being read joins it too, and what comes after is asked as
    ever. A time, not a count of texts: it bounds what the user waits for the answer, and an
    album's files come within a second or two (the apps send them at once, ten at most).
    """

    def __init__(self, wait: float = ALBUM_WAIT, longest: float = ALBUM_LONGEST) -> None:
        self._wait = wait
        self._longest = longest
        self._open: dict[tuple[int, str], _Album] = {}

    def said(self, chat_id: int, topic: int | None, text: str, part: int | None = None) -> bool:
        """Join ``text`` to the album gathering in this chat and topic, if one is; whether it did.

        ``part``: only to the album holding that message (the text replies to one of its
        files: one of its own album's, or one sent alone after it, which joined it). The album then
        waits ``wait`` seconds more (within its ``longest``): the text may have come before
        its last file.
        """
        album = self._gathering(chat_id, topic, part)
        if album is None:
            return False
        album.said.append(text)
        album.came_now(asyncio.get_running_loop().time(), self._wait)
        return True

    def cancel(self, chat_id: int, topic: int | None) -> bool:
        """Drop the album gathering in this chat and topic, if one is; whether one was.

        /cancel sent right after files: the user said "stop", was told "nothing is being
        written", and a second later the files were asked, and charged, all the same. Now
        none of it is asked, nor the album's files still to come.
        """
        album = self._gathering(chat_id, topic, None)
        if album is None:
            return False
        album.dropped = True
        album.came.set()
        return True

    def _gathering(self, chat_id: int, topic: int | None, part: int | None) -> _Album | None:
        """The album gathering in this chat and topic (the latest; ``part``'s only, if given).

        ``part``: a message the album holds. Not one dropped (``cancel``): what comes after
        /cancel is no part of it.
        """
        for (chat, _), album in reversed(self._open.items()):
            if (
                chat == chat_id
                and album.topic == topic
                and (part is None or part in album.parts)
                and not album.dropped
            ):
                return album
        return None

    def _joining(self, message: Message) -> _Album | None:
        """The album gathering that the file ``message`` is part of, if one is.

        Its own album's, or (a next album, or a file alone, sent right after) the one
        gathering in its chat and topic: the same question.
        """
        chat, group = message.chat.id, message.media_group_id
        album = None if group is None else self._open.get((chat, group))
        if album is None:
            topic = message.message_thread_id if message.is_topic_message else None
            album = self._gathering(chat, topic, None)
            if album is not None and group is not None:
                self._open[chat, group] = album  # its next files find it by their album's id
        return album

    async def _read_into(
        self, bot: Bot, album: _Album, message: Message, document: Document
    ) -> None:
        """Read a later file of ``album`` into it, as it waits for it.

        One Telegram did not hand over is ``UNAVAILABLE`` in the album (its failure logged).
        """
        album.parts[message.message_id] = None
        album.came_now(asyncio.get_running_loop().time(), self._wait)
        text: str | Refused = UNAVAILABLE  # also where reading it failed on a bug
        try:
            text = await read_text(bot, document)
        except TelegramAPIError as exc:
            log.warning("documents.album_part_failed", error=type(exc).__name__)
        finally:
            album.parts[message.message_id] = Read(message, text)
            album.came.set()

    async def whole(
        self, bot: Bot, message: Message, waiting: Callable[[], None] | None = None
    ) -> Gathered | None:
        """The album's files read, in the order sent; None where another update asks them.

        ``waiting`` is called when this one, the album's first, waits for the rest (which may
        then come). A later file Telegram did not hand over is ``UNAVAILABLE`` in the album
        (``_read_into``): the first file's update tells the album's outcome. A file sent alone
        (no ``media_group_id``) joins the album gathering in its chat and topic, if one is, as
        does a next album's first file (``_joining``); else it is read at once, alone. None
        too for an album dropped (``cancel``): none of it is asked.
        """
        document, group = message.document, message.media_group_id
        if document is None:
            raise ValueError("not a file")
        album = self._joining(message)
        if album is not None:
            await self._read_into(bot, album, message, document)
            return None
        if group is None:
            return Gathered([Read(message, await read_text(bot, document))])
        loop = asyncio.get_running_loop()
        topic = message.message_thread_id if message.is_topic_message else None
        now = loop.time()
        album = _Album(now + self._wait, now + self._longest, {message.message_id: None}, topic)
        self._open[message.chat.id, group] = album
        try:
            if waiting is not None:
                waiting()
            album.parts[message.message_id] = Read(message, await read_text(bot, document))
            while not album.dropped and (
                (left := album.due - loop.time()) > 0 or None in album.parts.values()
            ):
                with contextlib.suppress(TimeoutError):  # (not wait_for: it can swallow a cancel)
                    async with asyncio.timeout(max(left, 0) or None):
                        await album.came.wait()
                album.came.clear()
        finally:
            for named in [named for named, gathering in self._open.items() if gathering is album]:
                del self._open[named]
        if album.dropped:
            return None
        files = [read for _, read in sorted(album.parts.items()) if read is not None]
        return Gathered(files, tuple(album.said))
