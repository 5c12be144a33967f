"""Photos on the fake: ``sendPhoto`` with an upload or a known file_id, and ``getFile``.

Documents a user sends (``receive``) are kept the same way, for the bot to fetch.

``Media`` owns the files the bot uploaded and the bytes of every photo sent to a chat
(``photos``: chat id to the pictures, in order), so a test can decode what the user would see.
A photo goes up as a multipart file, either as the ``photo`` field itself or in a field that
``photo`` names as ``attach://<field>`` (what aiogram sends); a file_id of an earlier upload
sends it again. PNG and JPEG are read for their size; anything else is refused as Telegram
refuses a picture it cannot process (``IMAGE_PROCESS_FAILED``).

Unlike Telegram, which re-encodes a photo as JPEG and adds smaller sizes, the emulator keeps the
upload as it came: the message's ``photo`` is one PhotoSize (file_id, file_unique_id, width,
height, file_size), and ``getFile`` plus ``/file/bot<token>/<file_path>`` give the same bytes
back. The same bytes always get the same file_unique_id. URLs are not fetched.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from playground.state import MAX_CAPTION
from playground.wire import ApiError, Upload, bad_request, check_reply_markup

if TYPE_CHECKING:
    from playground.state import Method, TelegramState

__all__ = ["Media", "StoredFile", "image_size"]

MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTO_SIDES = 10_000  # width + height
MAX_PHOTO_RATIO = 20
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE})
_JPEG_BARE = frozenset({0x01, *range(0xD0, 0xDA)})  # markers without a length


@dataclass(frozen=True)
class StoredFile:
    """A file the bot uploaded: its ids, its path for downloads, its type and bytes."""

    file_id: str
    file_unique_id: str
    file_path: str
    content_type: str
    data: bytes = field(repr=False)
    sized: bool = True  # whether getFile states its file_size (an optional field)


def _png_size(data: bytes) -> tuple[int, int] | None:
    header_end = len(_PNG) + 8 + 13 + 4  # signature, length and type, IHDR data, CRC
    if len(data) < header_end or not data.startswith(_PNG):
        return None
    length, kind = struct.unpack(">I4s", data[8:16])
    body, crc = data[16:29], struct.unpack(">I", data[29:33])[0]
    if kind != b"IHDR" or length != 13 or zlib.crc32(kind + body) != crc:  # noqa: PLR2004
        return None
    width, height = struct.unpack(">II", body[:8])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:  # noqa: PLR2004 - a marker starts with 0xFF
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # noqa: PLR2004 - fill byte
            position += 1
            continue
        if marker in _JPEG_BARE:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_SOF and position + 9 <= len(data):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG or JPEG picture; None for anything else or a broken header."""
    size = _png_size(data) or _jpeg_size(data)
    return size if size is not None and min(size) > 0 else None


class Media:
    """Uploaded files and the photos sent with them; see the module docstring."""

    def __init__(self, state: TelegramState) -> None:
        self._state = state
        self.files: dict[str, StoredFile] = {}
        self.photos: dict[int, list[bytes]] = {}  # chat id -> photo bytes sent there, in order
        self._sizes: dict[str, list[dict[str, Any]]] = {}  # file_id -> its PhotoSize list

    def methods(self) -> dict[str, Method]:
        """The media methods, by their canonical names."""
        return {"sendPhoto": self._send_photo, "getFile": self._get_file}

    def by_path(self, file_path: str) -> StoredFile | None:
        """The file ``getFile`` gave ``file_path``, if any."""
        return next((f for f in self.files.values() if f.file_path == file_path), None)

    def receive(
        self, data: bytes, *, file_name: str, mime_type: str, sized: bool = True
    ) -> dict[str, Any]:
        """A file a user sends (a document): stored for ``getFile``; its ``Document`` object.

        ``sized=False``: its ``Document`` and ``File`` leave out ``file_size``, an optional
        field of both in the Bot API (core.telegram.org/bots/api#document, #file).
        """
        serial = self._state.next_id()
        unique = hashlib.sha256(data).hexdigest()[:16]
        suffix = file_name.rpartition(".")[2] if "." in file_name else "bin"
        stored = StoredFile(
            file_id=f"document-{unique}-{serial}",
            file_unique_id=unique,
            file_path=f"documents/file_{serial}.{suffix}",
            content_type=mime_type,
            data=data,
            sized=sized,
        )
        self.files[stored.file_id] = stored
        document = {"file_id": stored.file_id, "file_unique_id": unique, "file_name": file_name}
        return document | {"mime_type": mime_type} | ({"file_size": len(data)} if sized else {})

    def _upload(self, p: dict[str, Any]) -> Upload | str:
        """The photo of a sendPhoto: a new upload, or the file_id of one sent before."""
        photo = p.get("photo")
        if isinstance(photo, Upload):
            return photo
        if isinstance(photo, str) and photo.startswith("attach://"):
            attached = p.get(photo.removeprefix("attach://"))
            if isinstance(attached, Upload):
                return attached
            raise bad_request("there is no photo in the request")
        if not photo:
            raise bad_request("there is no photo in the request")
        if str(photo) not in self._sizes:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return str(photo)

    def _checked(self, upload: Upload) -> tuple[StoredFile, list[dict[str, Any]]]:
        """A new upload as a stored file and its PhotoSize list, if Telegram would take it."""
        data = upload.data
        if len(data) > MAX_PHOTO_BYTES:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Entity Too Large")
        size = image_size(data)
        if size is None:
            raise bad_request("IMAGE_PROCESS_FAILED")
        width, height = size
        if width + height > MAX_PHOTO_SIDES or max(size) > MAX_PHOTO_RATIO * min(size):
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        unique = hashlib.sha256(data).hexdigest()[:16]
        serial = self._state.next_id()
        extension = "png" if data.startswith(_PNG) else "jpg"
        stored = StoredFile(
            file_id=f"photo-{unique}-{serial}",
            file_unique_id=unique,
            file_path=f"photos/file_{serial}.{extension}",
            content_type="image/png" if extension == "png" else "image/jpeg",
            data=data,
        )
        photo_size: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": unique}
        photo_size |= {"width": width, "height": height, "file_size": len(data)}
        return stored, [photo_size]

    def _send_photo(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._state.chat(p)
        caption, entities = self._state.formatted(
            p, allow_empty=True, field="caption", limit=MAX_CAPTION
        )
        markup = check_reply_markup(p.get("reply_markup"), inline_only=False)
        upload = self._upload(p)
        if isinstance(upload, str):
            stored, sizes = self.files[upload], self._sizes[upload]
        else:
            stored, sizes = self._checked(upload)
        message = self._state.deliver(
            chat,
            p,
            "sendPhoto",
            photo=sizes,
            caption=caption or None,
            caption_entities=entities,
            reply_markup=markup,
        )
        self.files[stored.file_id] = stored
        self._sizes[stored.file_id] = sizes
        self.photos.setdefault(chat["id"], []).append(stored.data)
        return message

    def _get_file(self, p: dict[str, Any]) -> dict[str, Any]:
        stored = self.files.get(str(p.get("file_id", "")))
        if stored is None:
            raise bad_request("invalid file_id")
        file: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        if stored.sized:
            file["file_size"] = len(stored.data)
        return file | {"file_path": stored.file_path}
