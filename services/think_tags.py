"""A reasoning model's ``<think>…</think>`` in the answer's own text, taken out as its thinking.

A model served without a reasoning parser (vLLM without ``--reasoning-parser``, llama-server
without ``--reasoning-format``) writes its thinking into ``content``, between ``<think>`` and
``</think>``, before the answer. Shown as it came, the user read the tags and the whole
monologue as the answer, and it was stored and sent back to the model as if it were one. The
bot reads it as a reasoning parser would: the thinking goes where ``reasoning_content`` goes
(shown folded where the bot shows thinking, never stored), the answer is what follows.

Only a ``<think>`` that opens the answer (after blanks, a byte order mark U+FEFF counted as one
there: some servers and templates put one first) is one: a tag in the middle of an
answer is text the model wrote about it (an answer explaining these tags, say) and is shown
as written. A tag may arrive split across deltas (``<thi`` then ``nk>``): the few characters
that may begin one are held until the next delta says. A ``<think>`` never closed is thinking
to the end, as a reasoning parser streams it: the answer is then empty (the model ran out of
room while thinking). After ``</think>`` only the blank lines before the text are dropped: its
first line keeps its indentation (an answer that opens with an indented code block). Blanks
there are those that may open an answer (a byte order mark too, never kept in the indentation),
and a line ends where Python's ``str.splitlines`` ends one (U+2028 and U+0085 too). A lone
``</think>`` with no ``<think>`` before it (a chat template that opens the block in the
prompt) is not recognised: telling it from text needs the whole answer.
"""

from __future__ import annotations

import re
from typing import Final, Literal

OPEN: Final = "<think>"
CLOSE: Final = "</think>"

# The blanks opening an answer: Python's whitespace (``str.isspace``, which ``re``'s ``\s``
# matches for ``str``) and a byte order mark.
_OPENING_BLANKS: Final = re.compile(r"[\s\ufeff]*")
_BOM: Final = "\ufeff"
# What parts lines: Python's ``str.splitlines`` (``\r\n`` is a ``\r`` then a ``\n``).
_LINE_BREAKS: Final = "\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029"

Piece = tuple[Literal["text", "thought"], str]


class ThinkTags:
    """Splits an answer's content deltas into its text and its thinking, as they stream."""

    __slots__ = ("_blanks", "_held", "_indent", "_state")  # one an answer in progress

    def __init__(self) -> None:
        self._state: Literal["start", "thinking", "after", "text"] = "start"
        self._held = ""  # what may still turn out to be (the start of) a tag
        # Blank deltas opening the answer, kept aside (not in ``_held``): each delta would
        # otherwise scan every blank before it again (100,000 newlines: seconds of the loop).
        self._blanks: list[str] = []
        # After the thinking, before the text: the blanks since the last line break (the text's
        # first line's indentation, kept), once a line break came (blanks before one: dropped).
        self._indent: list[str] | None = None

    def feed(self, delta: str) -> list[Piece]:
        """The pieces of text and thinking ``delta`` completes (empty ones left out)."""
        if self._state == "text":
            return [("text", delta)] if delta else []
        if self._state == "start":
            return self._opening(delta)
        held, self._held = self._held + delta, ""
        return self._after_opening(held)

    def _opening(self, delta: str) -> list[Piece]:
        """Before the answer's first non-blank: is it a ``<think>``?"""
        if not self._held and _blank_opening(delta) == len(delta):
            self._blanks.append(delta)  # blanks: the next delta says
            return []
        held, self._held = self._held + delta, ""
        opening = held[_blank_opening(held) :]
        if OPEN.startswith(opening) and opening != OPEN:
            self._held = held  # the start of a tag: the next delta says
            return []
        blanks, self._blanks = "".join(self._blanks), []
        if not opening.startswith(OPEN):
            self._state = "text"
            return [("text", blanks + held)]
        self._state = "thinking"
        return self._after_opening(opening[len(OPEN) :])

    def _after_opening(self, held: str) -> list[Piece]:
        """Inside the thinking, or after it before the text: what ``held`` completes."""
        pieces: list[Piece] = []
        if self._state == "thinking":
            end = held.find(CLOSE)
            if end < 0:
                keep = _partial_close(held)
                self._held = held[len(held) - keep :] if keep else ""
                thought = held[: len(held) - keep]
                return [("thought", thought)] if thought else []
            if end:
                pieces.append(("thought", held[:end]))
            self._state, held = "after", held[end + len(CLOSE) :]
        return pieces + self._after_thinking(held)

    def _after_thinking(self, held: str) -> list[Piece]:
        """After the thinking: blank lines before the text dropped, its indentation kept."""
        start = _blank_opening(held)
        blanks, text = held[:start], held[start:]
        line_break = max(map(blanks.rfind, _LINE_BREAKS))
        if line_break >= 0:
            self._indent = [blanks[line_break + 1 :].replace(_BOM, "")]
        elif self._indent is not None:
            self._indent.append(blanks.replace(_BOM, ""))
        # else: blanks on the line of ``</think>``, not the text's
        if not text:
            return []
        indent, self._indent = "".join(self._indent or ()), None
        self._state = "text"
        return [("text", indent + text)]

    def end(self) -> list[Piece]:
        """What was held at the end of the answer: text it was, or thinking never closed."""
        held, self._held = "".join(self._blanks) + self._held, ""
        self._blanks, self._indent = [], None  # blanks after the thinking alone: no text
        if not held:
            return []
        return [("thought" if self._state == "thinking" else "text", held)]


def _blank_opening(text: str) -> int:
    """How many characters at the start of ``text`` are blanks that may open an answer."""
    blanks = _OPENING_BLANKS.match(text)
    return 0 if blanks is None else blanks.end()


def _partial_close(text: str) -> int:
    """How many characters at the end of ``text`` may begin ``</think>`` (0 when none)."""
    for length in range(min(len(text), len(CLOSE) - 1), 0, -1):
        if CLOSE.startswith(text[-length:]):
            return length
    return 0
