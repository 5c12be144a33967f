"""The fake Telegram plus ``sendPhoto`` (keeping the uploaded bytes) and a gate on sendMessage.

The emulator (``playground.botapi``) has no ``sendPhoto`` yet; the TON invoice sends its QR
code with it. The emulator's parts have no hook for another method, so ``PhotoTelegram`` adds
its two to the server's method table after it is built; its sendPhoto stores the message in
the emulator's ``state`` like any other the bot sends. It answers as Telegram does (a Message
with ``photo`` sizes and the caption; 400 without a photo or with a caption over 1024
characters) and keeps each upload's bytes in ``photos`` so a test can read the picture.
``hold_messages_to`` makes sendMessage to one chat wait until ``release_messages`` (to stop the
bot mid-notification).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
from typing import TYPE_CHECKING, Any

from aiohttp import web

from playground.wire import bad_request, check_reply_markup
from tests.fakes.telegram import FakeTelegram

if TYPE_CHECKING:
    from playground.state import Method

MAX_CAPTION = 1024
# The files uploaded with the request being answered, by form field name.
_UPLOADS: contextvars.ContextVar[dict[str, bytes]] = contextvars.ContextVar("uploads")


class PhotoTelegram(FakeTelegram):
    """``FakeTelegram`` with ``sendPhoto`` and a sendMessage gate; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        self.photos: dict[int, list[bytes]] = {}
        self.held_chats: set[int] = set()
        self.holding = asyncio.Event()  # set while a held sendMessage waits
        self._gate = asyncio.Event()
        super().__init__(**kwargs)
        added: dict[str, Method] = {
            "sendPhoto": self._send_photo,
            "sendMessage": self._gated_send_message,
        }
        self._methods |= added
        self._canonical |= {name.lower(): name for name in added}

    def hold_messages_to(self, chat_id: int) -> None:
        """Make sendMessage to ``chat_id`` wait (unanswered) until ``release_messages``."""
        self.held_chats.add(chat_id)
        self._gate.clear()

    def release_messages(self) -> None:
        """Let held sendMessage calls through."""
        self.held_chats.clear()
        self._gate.set()

    async def _handle(self, request: web.Request) -> web.Response:
        uploads: dict[str, bytes] = {}
        if request.method == "POST" and request.content_type == "multipart/form-data":
            form = await request.post()  # aiohttp keeps it: the emulator reads it again
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    uploads[name] = value.file.read()
                    value.file.seek(0)
        token = _UPLOADS.set(uploads)
        try:
            return await super()._handle(request)
        finally:
            _UPLOADS.reset(token)

    async def _gated_send_message(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("chat_id") in self.held_chats:
            self.holding.set()
            await self._gate.wait()
        return self.state._send_message(p)

    def _send_photo(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self.state.chat(p)
        photo = p.get("photo")
        uploads = _UPLOADS.get({})
        # A file goes up as a form field named in the parameter ("attach://<field>") or as the
        # parameter itself.
        name = photo.removeprefix("attach://") if isinstance(photo, str) else "photo"
        data = uploads.get(name)
        if data is None:
            raise bad_request("there is no photo in the request")
        caption = str(p.get("caption") or "")
        if len(caption) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        markup = check_reply_markup(p.get("reply_markup"), inline_only=False)
        self.photos.setdefault(chat["id"], []).append(data)
        unique = hashlib.sha256(data).hexdigest()[:16]
        size = {"file_id": f"photo-{unique}", "file_unique_id": unique, "file_size": len(data)}
        return self.state.send(
            chat,
            photo=[size | {"width": 320, "height": 320}],
            caption=caption or None,
            reply_markup=markup,
        )
