"""Text that arrives in many small pieces (a model's deltas), kept at about its own size.

A string per delta costs ~60 bytes of overhead (a token is a few characters). ``FoldedText``
joins its pieces into one string every ``FOLD`` appends, so a long answer in progress holds
about its own size, and ``text`` joins what is left once per use (a draft, an edit) and keeps
the result as the one piece. The chat service's answer text and the bot's draft and edit sinks
(the answer, and an edited answer's thinking) each keep one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["FOLD", "FoldedText"]

FOLD = 32  # pieces gathered before they are joined into one string


class FoldedText:
    """Pieces appended, folded into one string every ``FOLD``; iterating gives the pieces."""

    __slots__ = ("_pieces",)

    def __init__(self) -> None:
        self._pieces: list[str] = []

    def append(self, piece: str) -> None:
        """Add a piece (folding the pieces into one when ``FOLD`` have gathered)."""
        self._pieces.append(piece)
        if len(self._pieces) >= FOLD:
            self._pieces = ["".join(self._pieces)]

    def text(self) -> str:
        """The whole text so far, kept from now on as one piece (so it is joined once)."""
        if len(self._pieces) > 1:
            self._pieces = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    def __bool__(self) -> bool:
        return any(self._pieces)

    def __iter__(self) -> Iterator[str]:
        return iter(self._pieces)
