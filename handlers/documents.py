"""A small text file (a .txt, .md, .py...) sent in the private chat, read as a question.

A leaf shared by the chat's router (``handlers.chat.on_document``): the file's text goes to the
model as a fenced block headed by its name, with the caption, if any, after it as the question
(``services.documents.TextFile``, which also cuts a file too long for the model's window); from
there it is a question like any other (sealed to the worker, stored encrypted, never
logged). Only plain text of at most ``DOCUMENT_MOST`` bytes is read, UTF-8 or UTF-16 with its
byte-order mark (Windows Notepad's "Unicode"): a larger file is refused by the size Telegram
states, before it is fetched, or (its size not stated) once the download runs past it; one that
is not such text (a PDF, an image sent as a file, a NUL byte, another encoding) after it is
fetched, and so is one with no text in it (empty, or blanks only) (``Refused``).

Files sent at once (an album: a message each, one ``media_group_id``) are one question
(``Albums``): the first waits for the rest, each read by its own update.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, cast

import aiohttp
import structlog
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramNetworkError
from aiogram.methods import GetFile

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.types import Document, Message

DOCUMENT_MOST = 32 * 1024  # bytes of text read from one file (~8,000 tokens at most)
CHUNK = 8 * 1024  # bytes of a download read at a time
DOWNLOAD_TIMEOUT = 30  # seconds a download may take in all (aiogram's own default)
ALBUM_WAIT = 1.0  # seconds the first file of an album waits for the next, after each

log = structlog.get_logger("veil.documents")


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a file is not read: the catalog key of the user's note, and the log's reason."""

    key: str
    reason: str


TOO_BIG = Refused("document_too_big", "too_big")
NOT_TEXT = Refused("document_not_text", "not_text")
UNAVAILABLE = Refused("document_unavailable", "unavailable")
EMPTY = Refused("document_empty", "empty")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


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
    text = _decoded(data)
    if text is None or "\x00" in text:
        return NOT_TEXT
    return text if text.strip() else EMPTY


def _decoded(data: bytes) -> str | None:
    """``data`` as text: UTF-16 where a byte-order mark says so, else UTF-8 (a BOM dropped).

    None where it is neither.
    """
    codec = "utf-16" if data.startswith(_UTF16_BOMS) else "utf-8-sig"  # each drops its BOM
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


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


@dataclass(slots=True)
class _Album:
    """The files of one album so far, by message id (None: still being read), and when due."""

    due: float
    parts: dict[int, Read | None]
    came: asyncio.Event = field(default_factory=asyncio.Event)


class Albums:
    """Files sent at once, read as one question.

    The apps send an album of files as a message each, one right after another, the caption
    (the question) on one of them; each was a question of its own, the question asked with
    one file, the others asked with none. The first file of an album now waits until none
    has come for ``wait`` seconds and every file that came is read, and asks them all.
    """

    def __init__(self, wait: float = ALBUM_WAIT) -> None:
        self._wait = wait
        self._open: dict[tuple[int, str], _Album] = {}

    async def whole(
        self, bot: Bot, message: Message, waiting: Callable[[], None] | None = None
    ) -> list[Read] | None:
        """The album's files read, in the order sent; None when this one joined another's.

        ``waiting`` is called when this one, the album's first, waits for the rest (which may
        then come). A later file Telegram did not hand over is ``UNAVAILABLE`` in the album
        (its failure is logged): the first file's update tells the album's outcome.
        """
        document, group = message.document, message.media_group_id
        if document is None or group is None:
            raise ValueError("not a file of an album")
        loop = asyncio.get_running_loop()
        key = (message.chat.id, group)
        album = self._open.get(key)
        if album is not None:
            album.parts[message.message_id] = None
            album.due = loop.time() + self._wait
            album.came.set()
            text: str | Refused = UNAVAILABLE  # also where reading it failed on a bug
            try:
                text = await read_text(bot, document)
            except TelegramAPIError as exc:
                log.warning("documents.album_part_failed", error=type(exc).__name__)
            finally:
                album.parts[message.message_id] = Read(message, text)
                album.came.set()
            return None
        album = self._open[key] = _Album(loop.time() + self._wait, {message.message_id: None})
        try:
            if waiting is not None:
                waiting()
            album.parts[message.message_id] = Read(message, await read_text(bot, document))
            while (left := album.due - loop.time()) > 0 or None in album.parts.values():
                with contextlib.suppress(TimeoutError):  # (not wait_for: it can swallow a cancel)
                    async with asyncio.timeout(max(left, 0) or None):
                        await album.came.wait()
                album.came.clear()
        finally:
            if self._open.get(key) is album:
                del self._open[key]
        return [read for _, read in sorted(album.parts.items()) if read is not None]
