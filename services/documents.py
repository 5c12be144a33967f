"""A text file asked as a question: how the model reads it, whole or its start.

The file's text goes to the model as a fenced block headed by its name, with the caption, if
any, after it as the question. The bot cannot count a file's tokens before it asks (it has no
tokenizer: ``services.tokens``), so a file the model's window cannot hold with room for a real
answer is cut once the model server has said how long it is (``ChatService``): the model reads
its start (``TextFile.question``), told in the block's heading how much of the file that is,
and the user is told under the answer (``Answer.file_read``).

A file's bytes are read in the encoding they are in (``services.encodings.decoded``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

FENCE = "```"


@dataclass(frozen=True, slots=True)
class TextFile:
    """A text file sent as a question: its name, its text and the caption (the question).

    Files sent together (an album, ``together``) are one question too: ``text`` holds their
    texts one after another, and ``more`` where each file after the first begins in it, with
    its name, so a cut (``question``) reads as many of them, in order, as fit.
    """

    name: str
    text: str = field(repr=False)
    caption: str | None = field(default=None, repr=False)
    more: tuple[tuple[int, str], ...] = ()

    @classmethod
    def together(cls, files: Sequence[tuple[str, str]], caption: str | None) -> TextFile:
        """The files (name, text), in the order sent, asked as one question with ``caption``."""
        (name, text), *rest = files
        more: list[tuple[int, str]] = []
        for later, later_text in rest:
            more.append((len(text), later))
            text += later_text
        return cls(name, text, caption, tuple(more))

    def question(self, kept: int | None = None) -> str:
        """The files as the model reads them: each its name and its text fenced, then the caption.

        ``kept``: only the first ``kept`` characters of the texts (a file's heading says how
        much of it that is); None: all. Each fence is longer than any run of backticks in its
        text, so the text cannot close it.
        """
        read = len(self.text) if kept is None else min(kept, len(self.text))
        bounds = [(0, self.name), *self.more]
        ends = [start for start, _ in bounds[1:]] + [len(self.text)]
        blocks = [
            _block(name, self.text[start:end], max(0, min(end, read) - start))
            for (start, name), end in zip(bounds, ends, strict=True)
        ]
        block = "\n\n".join(blocks)
        caption = self.caption
        return f"{block}\n\n{caption}" if caption and caption.strip() else block

    def percent(self, kept: int) -> int:
        """How much of the text its first ``kept`` characters are, in whole percent (at least 1)."""
        return max(1, kept * 100 // max(1, len(self.text)))


def _block(name: str, whole: str, kept: int) -> str:
    """One file as the model reads it: its name, then its first ``kept`` characters fenced."""
    text = whole[:kept]
    if kept < len(whole):
        name = f"{name} (only its first {kept} of {len(whole)} characters: the rest did not fit)"
    fence = FENCE + "`" * max(0, _longest_backticks(text) + 1 - len(FENCE))
    return f"{name}:\n{fence}\n{text.rstrip()}\n{fence}"


def _longest_backticks(text: str) -> int:
    """The longest run of backticks in ``text``."""
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest
