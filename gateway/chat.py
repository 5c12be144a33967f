"""The chat request inside a sealed request: checked field by field before vLLM sees it.

Only these keys are allowed: ``model``, ``messages``, ``max_completion_tokens``,
``temperature``, ``top_p``, ``stop`` and ``cache_salt``. ``messages`` is a non-empty list of
``{"role": "system" | "user" | "assistant", "content": str | [part, ...]}``; a part is
``{"type": "text", "text": str}``, and, in a user message to a model listed in
``VEIL_MULTIMODAL_MODELS`` only, ``{"type": "image_url", "image_url": {"url": "data:image/…;
base64,…"}}``: never a URL the model server would fetch. The structure has a fixed depth, so no
nesting reaches vLLM's JSON encoder; sizes are bounded below and by the request's bucket.

``max_completion_tokens`` is clamped to the client's ceiling (the ceiling when absent, fitted to
the model's window by the relay: ``gateway.relay._Stream.fitted_chat``) and forwarded as both
``max_completion_tokens`` and ``max_tokens``: vLLM takes the former, and llama.cpp's
``llama-server`` (the run command's local model server) honours only the latter.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from gateway.refusals import Refusal, malformed
from sealed.receipt import MAX_MODEL_NAME

if TYPE_CHECKING:
    from collections.abc import Collection

ALLOWED_KEYS = frozenset(
    {"model", "messages", "max_completion_tokens", "temperature", "top_p", "stop", "cache_salt"}
)
ROLES = frozenset({"system", "user", "assistant"})
MAX_MESSAGES = 1024
MAX_PARTS = 64
MAX_STOP_SEQUENCES = 4
MAX_STOP_LENGTH = 256
MAX_CACHE_SALT = 256
MAX_TEMPERATURE = 2.0
IMAGE_DETAILS = frozenset({"auto", "low", "high"})
# Tokens a message costs beyond its text in the conservative estimate (role, separators).
ESTIMATE_PER_MESSAGE = 8
ESTIMATE_PER_IMAGE = 4096
_DATA_URL = re.compile(r"data:image/[a-z0-9.+-]{1,32};base64,[A-Za-z0-9+/]+={0,2}")


def bad_content(message: str) -> Refusal:
    """A 400 ``bad_content`` refusal."""
    return Refusal(400, "bad_content", message)


def servable_model(name: str) -> bool:
    """Whether a model id can go in the key bundle.

    1 to ``MAX_MODEL_NAME`` characters, as every client requires of a bundle's models, and
    printable, as the names bots show their users.
    """
    return 0 < len(name) <= MAX_MODEL_NAME and name.isprintable()


def upstream_chat(
    chat: dict[str, Any],
    *,
    models: Collection[str],
    multimodal: Collection[str],
    ceiling: int,
) -> dict[str, Any]:
    """Check ``chat`` and return the body to send to vLLM; raise ``Refusal`` otherwise.

    ``models`` are the models the current key bundle lists, ``multimodal`` those that may take
    images, ``ceiling`` the client's most completion tokens.
    """
    unknown = set(chat) - ALLOWED_KEYS
    if unknown:
        raise malformed("chat request has fields the gateway does not accept")
    model = chat.get("model")
    if not isinstance(model, str) or not 0 < len(model) <= MAX_MODEL_NAME:
        raise malformed("chat request has no model")
    if model not in models:
        raise Refusal(400, "unknown_model", "this gateway's key bundle does not list the model")
    messages = _messages(chat.get("messages"), images=model in multimodal)
    tokens = _max_tokens(chat.get("max_completion_tokens"), ceiling)
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_completion_tokens": tokens,
        "max_tokens": tokens,
    }
    for key, low, high, low_open in (
        ("temperature", 0.0, MAX_TEMPERATURE, False),
        ("top_p", 0.0, 1.0, True),
    ):
        if key in chat:
            body[key] = _number(chat[key], key, low, high, low_open=low_open)
    if "stop" in chat:
        body["stop"] = _stop(chat["stop"])
    if "cache_salt" in chat:
        salt = chat["cache_salt"]
        if not isinstance(salt, str) or not 0 < len(salt) <= MAX_CACHE_SALT:
            raise malformed("cache_salt must be a short non-empty string")
        body["cache_salt"] = salt
    return body


def estimate_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """A count no smaller than the prompt's tokens: UTF-8 bytes of its strings + 8 a message.

    A token is at least one byte of text, so the bytes bound the tokens from above; the
    per-message term covers the role and the template's separators. An image counts its data
    URL's bytes, and at least ``ESTIMATE_PER_IMAGE`` (vision encoders spend a fixed few hundred
    to a few thousand tokens on an image, however small its file).
    """
    total = 0
    for message in messages:
        total += ESTIMATE_PER_MESSAGE
        content = message["content"]
        if isinstance(content, str):
            total += len(content.encode("utf-8"))
            continue
        for part in content:
            if part["type"] == "text":
                total += len(part["text"].encode("utf-8"))
            else:
                total += max(len(part["image_url"]["url"]), ESTIMATE_PER_IMAGE)
    return total


def _messages(value: object, *, images: bool) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_MESSAGES:
        raise malformed(f"messages must be a list of 1 to {MAX_MESSAGES} messages")
    checked = []
    for message in value:
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise malformed("a message is an object of role and content")
        role = message["role"]
        if role not in ROLES:
            raise malformed("a message's role is system, user or assistant")
        content = message["content"]
        if not isinstance(content, str):
            content = _parts(content, images=images and role == "user")
        checked.append({"role": role, "content": content})
    return checked


def _parts(value: object, *, images: bool) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_PARTS:
        raise malformed(f"content is a string or a list of 1 to {MAX_PARTS} parts")
    parts: list[dict[str, Any]] = []
    for part in value:
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise malformed("a content part is an object with a type")
        if part["type"] == "text":
            if set(part) != {"type", "text"} or not isinstance(part["text"], str):
                raise malformed("a text part is {type, text}")
            parts.append({"type": "text", "text": part["text"]})
        elif part["type"] == "image_url":
            if not images:
                raise bad_content("this model takes text only (images only in user messages)")
            parts.append({"type": "image_url", "image_url": _image(part)})
        else:
            raise bad_content("content parts are text (or images for multimodal models)")
    return parts


def _image(part: dict[str, Any]) -> dict[str, str]:
    image = part.get("image_url")
    if set(part) != {"type", "image_url"} or not isinstance(image, dict):
        raise malformed("an image part is {type, image_url: {url}}")
    if not set(image) <= {"url", "detail"} or not isinstance(image.get("url"), str):
        raise malformed("an image part is {type, image_url: {url}}")
    if not _DATA_URL.fullmatch(image["url"]):
        raise bad_content("images must be base64 data: URLs; the gateway fetches nothing")
    checked = {"url": image["url"]}
    if "detail" in image:
        if image["detail"] not in IMAGE_DETAILS:
            raise malformed("image detail is auto, low or high")
        checked["detail"] = image["detail"]
    return checked


def _max_tokens(value: object, ceiling: int) -> int:
    if value is None:
        return ceiling
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise malformed("max_completion_tokens must be a positive integer")
    return min(value, ceiling)


def _number(value: object, key: str, low: float, high: float, *, low_open: bool) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise malformed(f"{key} must be a number")
    # Comparisons of int and float are exact in Python (no overflow), and NaN fails them all.
    above_low = low < value if low_open else low <= value
    if not (above_low and value <= high):
        raise malformed(f"{key} is out of range")
    return float(value)


def _stop(value: object) -> str | list[str]:
    sequences = [value] if isinstance(value, str) else value
    if not isinstance(sequences, list) or len(sequences) > MAX_STOP_SEQUENCES:
        raise malformed(f"stop is a string or up to {MAX_STOP_SEQUENCES} short strings")
    checked = [s for s in sequences if isinstance(s, str) and 0 < len(s) <= MAX_STOP_LENGTH]
    if len(checked) != len(sequences):
        raise malformed(f"stop is a string or up to {MAX_STOP_SEQUENCES} short strings")
    return checked[0] if isinstance(value, str) else checked
